"""Webhooks: events, signing (Standard Webhooks), the retry schedule and the delivery log.

* An **event** (``webhook_events``) is something that happened once: ``job.started``,
  ``job.completed``, ``job.failed``, ``batch.completed``, ``batch.cancelled``. Its id
  (``msg_…``) is the ``webhook-id`` header of every attempt, so receivers can de-duplicate.
* A **delivery** (``webhook_deliveries``) is one event to one URL: the job's own
  ``webhook_url``, the batch's, or one of the tenant's default endpoints. Deliveries are
  created in the transaction that moves the job (or batch) to the new state, so an event is
  never lost when a job finishes. ``next_attempt_at`` is the schedule: the sweeper dispatches
  due deliveries to a short Celery task that makes one HTTP attempt (workers/webhooks.py).
* Every HTTP **attempt** is logged (``webhook_attempts``): time, status, latency, the first
  1 KiB of the response, the error.

Payload: ``{"type", "timestamp", "data"}`` where ``data`` is the job's status document (what
``GET /api/v1/bria/status/{id}`` answers, result URLs signed at send time) or, for batch events,
the batch document. Signature per Standard Webhooks v1: ``webhook-signature: v1,<base64
HMAC-SHA256(secret, "{webhook-id}.{webhook-timestamp}.{body}")>``; during a secret rotation's
grace period the header carries both signatures, space-separated.

The package knows neither HTTP frameworks nor Celery; the functions take a sync ``Session``
(the API calls them through ``AsyncSession.run_sync``). Its modules, by role: ``schemas`` (event
types, the options and endpoint bodies clients send), ``signing`` (Standard Webhooks
signatures), ``tenant_secrets`` (each tenant's signing secret and its rotation), ``retry`` (the
schedule and what an answer means), ``outbox`` (events and their deliveries, written in the
transaction that moved the job or batch), ``delivery`` (preparing, recording and re-arming
attempts; the delivery log) and ``endpoints`` (a tenant's default endpoints).
"""
