"""`python -m model_server [KServe flags]`: the predictor's container entry point."""

import logging

from fraudcore.logging import configure_logging
from fraudcore.settings import Settings
from model_server.server import parse_args, serve


def main() -> None:
    options = parse_args()
    settings = Settings()
    configure_logging(settings.log_level, json_output=True)
    # One JSON line per request comes from the predictor itself; these would repeat it as text.
    for name in ("uvicorn.access", "kserve.trace"):
        logging.getLogger(name).setLevel(logging.WARNING)
    serve(settings, options)


if __name__ == "__main__":
    main()
