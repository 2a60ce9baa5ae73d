"""`mimamori purge-tenant TENANT_ID`: a contract ended; its data goes from every table and the registry."""
from __future__ import annotations

import argparse
import sys

from pipeline.config import Settings
from pipeline.io.kafka_security import kafka_python_options, unless_refused
from pipeline.io.store.backends import StoreError, open_store
from pipeline.io.store.purge import purge_tenant, tenant_utm_ids

HELP = "delete every row of a tenant from the store and remove its registry records (null records)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("tenant_id", metavar="TENANT_ID")
    parser.add_argument("--store", metavar="URL", help="overrides MIMAMORI_CLICKHOUSE")
    parser.add_argument("--kafka", metavar="B", help="bootstrap servers (overrides MIMAMORI_KAFKA)")
    parser.add_argument("--no-kafka", action="store_true", help="do not publish the registry null records")


def publish_removals(bootstrap: str, settings: Settings, tenant_id: str, utm_ids: list[str]) -> None:
    """Null records (tombstones) for the tenant and its UTMs on the compacted registry topics."""
    from kafka import KafkaProducer

    producer = unless_refused(lambda: KafkaProducer(bootstrap_servers=bootstrap.split(","), acks="all", retries=5,
                                                    **kafka_python_options(settings)))
    try:
        for utm_id in utm_ids:
            producer.send(settings.topics.utms, key=utm_id.encode(), value=None)
        producer.send(settings.topics.tenants, key=tenant_id.encode(), value=None)
        producer.flush(timeout=30)
    finally:
        producer.close(timeout=10)


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        store = open_store(args.store or settings.clickhouse)
    except StoreError as exc:
        print(f"mimamori purge-tenant: {exc}", file=sys.stderr)
        return 1
    try:
        utm_ids = tenant_utm_ids(store, args.tenant_id)
        if not args.no_kafka:  # first, so that the pipeline stops taking the tenant's data
            publish_removals(args.kafka or settings.kafka, settings, args.tenant_id, utm_ids)
            print(f"registry: null records for tenant {args.tenant_id} and {len(utm_ids)} UTM(s): {', '.join(utm_ids)}")
        deleted = purge_tenant(store, args.tenant_id, utm_ids)
    except StoreError as exc:
        print(f"mimamori purge-tenant: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # kafka-python errors have no common base worth importing here
        print(f"mimamori purge-tenant: registry: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    for table, count in deleted.items():
        print(f"{table}: {count} rows deleted")
    print(f"total: {sum(deleted.values())} rows deleted")
    return 0
