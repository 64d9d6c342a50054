"""Workers: claim flow runs from work pools, run them, report states, renew their lease."""
