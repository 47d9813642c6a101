from rest_framework import parsers
from rest_framework.exceptions import ValidationError

from cem.params import UNSTORABLE_MESSAGE, unstorable_path


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, refusing strings PostgreSQL cannot store (NUL, unpaired surrogates).

    Checked once here for every JSON body, so neither hand-validated payloads (the ingests) nor
    fields DRF does not check (JSONField) reach the database with them: a 400 naming where it is.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        path = unstorable_path(data)
        if path is not None:
            raise ValidationError({path or "non_field_errors": [UNSTORABLE_MESSAGE]})
        return data


class CSVParser(parsers.BaseParser):
    """Hands a text/csv body to the view as rows (dicts keyed by header)."""

    media_type = "text/csv"

    def parse(self, stream, media_type=None, parser_context=None):
        from cem.ingest import rows_from_csv

        return rows_from_csv(stream.read())
