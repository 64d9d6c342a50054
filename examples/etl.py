"""The README's first example: an ETL flow with a retried task and run logging."""

from prefect_lite import flow, get_run_logger, task


@task(retries=2)
def extract(url: str) -> dict:
    return {"records": 100, "source": url}


@task
def transform(raw: dict) -> dict:
    return {"processed_records": raw["records"], "status": "transformed"}


@task
def load(processed: dict) -> dict:
    get_run_logger().info("Loading %s records", processed["processed_records"])
    return {"loaded": True}


@flow(name="ETL Pipeline", log_prints=True)
def etl_flow(source_url: str = "https://api.example.com/data") -> dict:
    raw = extract(source_url)
    processed = transform(raw)
    result = load(processed)
    print(f"done: {result}")
    return result


if __name__ == "__main__":
    print(etl_flow())
