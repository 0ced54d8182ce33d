"""The bare-stack ceiling: uvicorn as the predictor runs it (uvloop, httptools, one worker) with an
ASGI app that reads each request body and answers fixed bytes (the predictor's own response).

    python -m benchmarks.bare --port 8090 --response response.json
"""

import argparse
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send


def app_answering(response: bytes) -> ASGIApp:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(response)).encode())]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        message = await receive()
        while message.get("more_body"):
            message = await receive()
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": response})

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--response", type=Path, required=True, help="file with the response body")
    args = parser.parse_args()
    app = app_answering(args.response.read_bytes())
    uvicorn.run(app, host="127.0.0.1", port=args.port, loop="uvloop", http="httptools",
                lifespan="off", access_log=False, log_level="warning")  # fmt: skip


if __name__ == "__main__":
    main()
