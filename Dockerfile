FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY api api
COPY core core
COPY cli cli
COPY workers workers
COPY providers providers
COPY migrations migrations
COPY alembic.ini .
RUN pip install --no-cache-dir .
