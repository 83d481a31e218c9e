"""The FHIR R4 facade (docs/fhir.md): a view of the relational model for partner apps, one module per
resource, every error an ``OperationOutcome``."""
