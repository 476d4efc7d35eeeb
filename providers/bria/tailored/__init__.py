"""Bria's tailored generation (LoRA): a tenant's projects, datasets, training images and models,
mirrored to Bria's tailored-generation API, and the intake step of the two generation jobs.

* ``client``     – Bria's tailored-generation API (the upstream calls; sources there);
* ``tables``     – the gateway's records, on this package's own metadata;
* ``repository`` – every SQL statement, scoped by tenant;
* ``service``    – ids, documents, Bria's model states, the state rules, the generation intake
  (``resolver``, the operations' ``resolve`` hook);
* ``routes``     – the 25 management endpoints (``build_routers``), in ``routes_projects``
  (projects, datasets) and ``routes_training`` (images, models, training), on the helpers of
  ``routes_common``.
"""
