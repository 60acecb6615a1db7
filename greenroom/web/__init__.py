"""The host's own HTTP surface beside the modules' routes: discovery, health and settings routes, the
OpenAPI document and its explorer at ``/docs``, the web page at ``/ui/``, and OpenAI's ``/v1/models`` and
error shape. ``create_app`` registers it; module code imports only :mod:`greenroom.web.openai_models`."""
