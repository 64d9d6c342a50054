"""The scheduler: plan scheduled runs, promote due ones, mark late runs and reap lost leases."""
