"""Customer mail: when it goes (timing), what it says (render), how it is delivered (transport, ledger)."""
