"""pausectl's testing kit: real local Airflow servers for tests and the demo. Not part of the wheel."""
