from prefect_lite.cli import main

main()
