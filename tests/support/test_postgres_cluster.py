"""The throwaway cluster itself works where the server is installed."""

from __future__ import annotations

import pytest

from tests.support import postgres

pytestmark = pytest.mark.skipif(postgres.available() is not None,
                                reason=postgres.available() or "")


def test_a_cluster_starts_on_a_socket_and_takes_queries() -> None:
    import psycopg

    with postgres.cluster() as pg:
        db = pg.create_database("hub_test")
        with psycopg.connect(db.url) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("hub_test",)
            assert conn.execute("SHOW listen_addresses").fetchone() == ("",)
