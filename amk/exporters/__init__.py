"""Writers of amk records into other tools' formats (the inverse of amk.importers)."""
