def test_favicon_is_served_not_a_404(client):
    resp = client.get("/favicon.ico")
    assert resp.status_code == 301
    assert resp["Location"].endswith(".svg")
