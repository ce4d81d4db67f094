"""The live side: the Backend protocol and its implementations (snapshot, dagmodel, Airflow REST)."""
