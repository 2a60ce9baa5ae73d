"""Ingest: the wire contract of UTM events and heartbeats, validation, normalization and rejections."""
from pipeline.ingest.validator import EventValidator, original_value, rejection, wire_checked, wire_refusal
from pipeline.ingest.wire import MAX_RECORD_BYTES, Refusal, canonical_ip, canonical_mac

__all__ = ["EventValidator", "MAX_RECORD_BYTES", "Refusal", "canonical_ip", "canonical_mac", "original_value", "rejection", "wire_checked", "wire_refusal"]
