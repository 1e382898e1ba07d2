"""The HIPE adapter's CSV import: cells quoted and neutralised, the multipart upload polled to
its end, row errors mapped back to their external ids (httpx.MockTransport)."""

from __future__ import annotations

import httpx
import pytest

from adapters.hipe import (
    HipeCompanyImportRow,
    build_companies_csv,
    neutralise_formula,
)
from erpsync.errors import (
    PermanentError,
    TransientError,
)
from tests.support.hipe_api import (
    TRICKY_NAME,
    FakeTime,
    ImportServer,
    _always,
    _multipart,
    _parse_csv,
    _rows,
    make,
)


def test_csv_quotes_delimiters_quotes_newlines_accents_and_emoji() -> None:
    rows = [
        HipeCompanyImportRow(external_id="E1", name=TRICKY_NAME, website="https://a.b/?x=1,2"),
        HipeCompanyImportRow(external_id="E2", name='Line one\nline two, "quoted" ; 🚀 מפעל'),
        HipeCompanyImportRow(
            external_id="E3", name="Plain", custom_fields={"tier": "gold", "vip": True, "n": 3}
        ),
    ]
    content = build_companies_csv(rows)
    parsed = _parse_csv(content)
    assert parsed[0] == [
        "externalId",
        "name",
        "website",
        "customFields.n",
        "customFields.tier",
        "customFields.vip",
    ]
    assert parsed[1] == ["E1", TRICKY_NAME, "https://a.b/?x=1,2", "", "", ""]
    assert parsed[2] == ["E2", 'Line one\nline two, "quoted" ; 🚀 מפעל', "", "", "", ""]
    assert parsed[3] == ["E3", "Plain", "", "3", "gold", "true"]
    assert content.startswith(b"externalId,name,"), "UTF-8 without a byte-order mark"
    assert '"Dupont & Fils ""Émballages"" 100% +"'.encode() in content


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ('=HYPERLINK("http://evil")', '\'=HYPERLINK("http://evil")'),
        ("+33 1 23 45 67 89", "'+33 1 23 45 67 89"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("Acme = good", "Acme = good"),
        ("", ""),
        ("'already", "'already"),
    ],
)
def test_formula_cells_get_a_leading_quote(cell: str, expected: str) -> None:
    assert neutralise_formula(cell) == expected


def test_csv_neutralises_formulas_in_every_text_column_but_not_numbers() -> None:
    rows = [
        HipeCompanyImportRow(
            external_id="E1",
            name="=cmd|' /C calc'!A0",
            phone="+1 555",
            email="@me",
            custom_fields={"note": "-x", "score": -5},
        )
    ]
    parsed = _parse_csv(build_companies_csv(rows))
    header, row = parsed
    cells = dict(zip(header, row, strict=True))
    assert cells["name"] == "'=cmd|' /C calc'!A0"
    assert cells["phone"] == "'+1 555"
    assert cells["email"] == "'@me"
    assert cells["customFields.note"] == "'-x"
    assert cells["customFields.score"] == "-5", "a number cannot carry a formula"


def test_import_posts_multipart_type_16_and_polls_to_success() -> None:
    final = {
        "total": 3,
        "processed": 3,
        "created": 1,
        "updated": 1,
        "errors": [{"row": 2, "externalId": "E2", "message": "email is invalid"}],
    }
    server = ImportServer([2, 2, 8], final)
    fake = FakeTime()
    client = make(server, fake_time=fake, import_poll_interval_s=0.5)
    result = client.import_companies(_rows(3))
    assert (result.status, result.total, result.created, result.updated) == (8, 3, 1, 1)
    assert result.import_id == 42
    assert result.failed_external_ids == ["E2"]
    assert result.errors[0].row == 2
    assert server.polls == 3
    assert fake.sleeps == [0.5, 0.5, 0.5]
    parts = _multipart(server.posts[0])
    assert parts["type"] == (None, b"16")
    assert parts["delimiter"] == (None, b",")
    filename, csv_bytes = parts["csv"]
    assert filename is not None
    assert _parse_csv(csv_bytes) == [
        ["externalId", "name"],
        ["E1", "Name 1"],
        ["E2", "Name 2"],
        ["E3", "Name 3"],
    ]
    row_error = client.import_row_error(result.errors[0])
    assert isinstance(row_error, PermanentError)
    assert "email is invalid" not in str(row_error)
    assert row_error.response_excerpt == "email is invalid"


def test_an_import_notified_by_email_sent_is_ended_with_its_result() -> None:
    """4 SENT: "the import result has been notified by email": the result is final."""
    final = {"total": 2, "processed": 2, "created": 2, "updated": 0, "errors": []}
    server = ImportServer([1, 2, 4], final)
    result = make(server, fake_time=FakeTime()).import_companies(_rows(2))
    assert (result.status, result.total, result.created, result.updated) == (4, 2, 2, 0)
    assert server.polls == 3, "no poll after SENT"


def test_import_row_errors_map_back_to_the_external_id_that_was_sent() -> None:
    rows = [
        HipeCompanyImportRow(external_id="E1", name="ok"),
        HipeCompanyImportRow(external_id="-neg", name="quoted by neutralisation"),
    ]
    final = {"errors": [{"row": 2, "externalId": "'-neg", "message": "bad"}, {"row": 9}]}
    result = make(ImportServer([8], final)).import_companies(rows)
    assert [e.external_id for e in result.errors] == ["-neg", None]


def test_import_crash_is_permanent_for_the_whole_import() -> None:
    fake = FakeTime()
    client = make(ImportServer([2, 7]), fake_time=fake)
    with pytest.raises(PermanentError) as caught:
        client.import_companies(_rows(2))
    exc = caught.value
    assert exc.vendor_code == "import-status-7"
    assert "import_companies" in str(exc)
    assert "status 7" in str(exc)
    assert len(fake.sleeps) == 2


def test_import_aborted_and_unknown_statuses_are_permanent() -> None:
    with pytest.raises(PermanentError) as aborted:
        make(ImportServer([2, 3], {"total": 3, "processed": 2})).import_companies(_rows(3))
    assert aborted.value.vendor_code == "import-status-3"
    assert "status 3 (ABORTED) after 2 of 3 rows" in str(aborted.value)
    assert aborted.value.hint == "the import was cancelled in HIPE; replay when it should run again"
    with pytest.raises(PermanentError) as unknown:
        make(ImportServer([5])).import_companies(_rows(1))
    assert unknown.value.vendor_code == "import-status-5"


def test_import_still_running_at_the_timeout_is_transient_and_stops_polling() -> None:
    fake = FakeTime()
    server = ImportServer([2])
    client = make(server, fake_time=fake, import_poll_interval_s=2, import_timeout_s=9)
    with pytest.raises(TransientError) as caught:
        client.import_companies(_rows(1))
    assert caught.value.vendor_code == "import-timeout"
    assert "import 42" in str(caught.value)
    assert fake.sleeps == [2, 2, 2, 2, 2]
    assert server.polls == 5
    assert fake.now - 1000.0 == 10


def test_import_sent_status_counts_as_done_and_empty_import_sends_nothing() -> None:
    result = make(ImportServer([4], {"created": 1, "updated": 0, "total": 1})).import_companies(
        _rows(1)
    )
    assert result.status == 4
    assert result.created == 1
    calls: list[httpx.Request] = []

    def nothing(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(500)

    empty = make(nothing).import_companies([])
    assert (empty.total, empty.created, empty.updated, empty.errors) == (0, 0, 0, [])
    assert calls == []


def test_import_rejected_upload_is_classified() -> None:
    with pytest.raises(PermanentError):
        make(_always(400)).import_companies(_rows(1))
