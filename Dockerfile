# syntax=docker/dockerfile:1
# nanobanana-sim in a container: every provider on 0.0.0.0:8000, the control plane (/_sim) behind a token.
#
#   docker build -t nanobanana-sim .
#   docker run --rm -p 8000:8000 nanobanana-sim                  # a random control token, shown in the banner
#   docker run --rm -p 8000:8000 -e NANOBANANA_CONTROL_TOKEN=s3cret -e NANOBANANA_SPEED=50 nanobanana-sim
#
# Every `serve` setting is also an environment variable (NANOBANANA_<SETTING>); arguments after the image name
# replace `serve` (`... nanobanana-sim serve --virtual-clock`, `... nanobanana-sim scenarios`).
ARG PYTHON_IMAGE=python:3.12.8-slim-bookworm

FROM ${PYTHON_IMAGE} AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY simulator simulator
COPY schemas schemas
COPY contracts contracts
RUN pip wheel --no-cache-dir --disable-pip-version-check --no-deps --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN --mount=type=bind,from=wheel,source=/wheels,target=/wheels \
    pip install --no-cache-dir --disable-pip-version-check /wheels/*.whl \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin sim
USER 10001
# Reachable through a published port, so never without a control token: `random` makes one at start.
ENV NANOBANANA_HOST=0.0.0.0 NANOBANANA_PORT=8000 NANOBANANA_CONTROL_TOKEN=random
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s \
    CMD ["python", "-c", "import os, socket; socket.create_connection(('127.0.0.1', int(os.environ['NANOBANANA_PORT'])), 2)"]
ENTRYPOINT ["nanobanana-sim"]
CMD ["serve"]
