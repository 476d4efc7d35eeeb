"""Jobs: the state machine (``states``), the moves between states (``moves``), claims and the
tenants' waiting lines (``claims``), the sweeper's searches (``sweeps``), the API's reads
(``queries``) and the pipeline's timing rules (``timing``)."""
