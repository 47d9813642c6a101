from rest_framework.parsers import BaseParser


class CSVParser(BaseParser):
    """Hands a text/csv body to the view as rows (dicts keyed by header)."""

    media_type = "text/csv"

    def parse(self, stream, media_type=None, parser_context=None):
        from cem.ingest import rows_from_csv

        return rows_from_csv(stream.read())
