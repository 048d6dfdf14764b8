"""feeds/ and the subscription pages over HTTP: the web app, health, metrics."""
