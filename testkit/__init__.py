"""pausectl's testing kit: real local Airflow servers for tests, the demo, and reconciler.testing's
pausectl_airflow fixture (docs/testing.md). Ships in the wheel beside reconciler."""
