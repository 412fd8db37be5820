"""The soak: many generations on a production-shaped Airflow, through faults and kills.

``make soak`` (``python -m soak``) runs the full one; tests/soak/test_soak.py a reduced one in
``make test-slow``. See docs/reliability.md ("Soak") for what is checked and the latest table.
"""
