"""The host's own HTTP surface beside the modules' routes: the transport contract (CORS, the API key, the
origin and Host allow-lists), the discovery, health and settings routes, the OpenAPI document and its
explorer at ``/docs``, the web page at ``/ui/``, and OpenAI's ``/v1/models`` and error shape.
``create_app`` installs it. Modules import from here only :mod:`greenroom.web.openai_models` and, where a
route checks the key itself (raven), ``transport.key_matches``."""
