"""An example third-party Greenroom module: one settings model, one blueprint, three routes."""
import time

from flask import Response, jsonify
from pydantic import BaseModel, Field

from greenroom import ApiBlueprint, Module, ModuleSettings, hookimpl


class HelloSettings(ModuleSettings):
    greeting: str = Field("Hello", min_length=1, max_length=40, description="The word to greet with.")
    exclamations: int = Field(1, ge=0, le=5, description="How many '!' follow the name.")


class TicksQuery(BaseModel):
    interval: float = Field(0.1, ge=0.01, le=10, description="Seconds between ticks.")


class HelloRequest(BaseModel):
    name: str = Field(min_length=1, max_length=100, description="Who to greet.")


class HelloReply(BaseModel):
    """The greeting."""
    message: str


class Hello(Module):
    name = "hello"
    version = "0.2.0"
    description = "Greets people (an example third-party module)."
    Settings = HelloSettings

    def blueprint(self) -> ApiBlueprint:
        bp = ApiBlueprint("hello", __name__)

        @bp.api("/api/hello", methods=["POST"], body=HelloRequest, summary="Greet someone",
                responses={200: HelloReply})
        def greet(body: HelloRequest):
            bang = "!" * self.settings.exclamations
            return jsonify({"message": f"{self.settings.greeting}, {body.name}{bang}"})

        @bp.api("/api/hello/badge.svg", summary="A badge for <img> tags (no API key needed)", auth=False,
                responses={200: {"description": "SVG image", "content": {"image/svg+xml": {}}}})
        def badge():
            svg = '<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20"><text y="15">hi</text></svg>'
            return Response(svg, mimetype="image/svg+xml")

        @bp.api("/api/hello/ticks", query=TicksQuery, summary="An endless text stream, one tick per interval",
                responses={200: {"description": "text/event-stream", "content": {"text/event-stream": {}}}})
        def ticks(query: TicksQuery):
            def generate():
                n = 0
                while True:
                    yield f"data: {n}\n\n".encode()
                    n += 1
                    time.sleep(query.interval)

            # context.stream holds one of the server's stream slots (503 when none is free)
            # and ends the stream when the server shuts down.
            return Response(self.context.stream(generate()), mimetype="text/event-stream")

        return bp


@hookimpl
def register_modules(register):
    register(Hello)
