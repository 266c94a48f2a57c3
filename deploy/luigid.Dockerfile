# luigid for deploy/docker-compose.yml: luigi, SQLAlchemy (task history) and
# prometheus-client (/metrics) at the versions of constraints.txt.
FROM python:3.11-slim-bookworm
COPY constraints.txt /tmp/constraints.txt
RUN pip install --no-cache-dir -c /tmp/constraints.txt luigi sqlalchemy prometheus-client
