"""One module per FHIR resource: its mapping from the relational model, its read and search (and its writes)."""
