"""Run examples/airflow_accounts_dag.py with Airflow's `dag.test()` and print what its task
instances did, as JSON on the last line of stdout.

Not a test module: `tests/test_examples_accounts.py` runs it with the Python of the side venv that
has Airflow (`.venv-airflow`, built by the README's test command), in an environment it prepares:
AIRFLOW_HOME (a fresh metadata database, created here), AIRFLOW__CORE__DAGS_FOLDER (a folder
holding the DAG file: Airflow 3 runs only DAGs it has parsed from a bundle), SQQUID_CONFIG (the
accounts), their keys, SQQUID_DUCKDB.

    python tests/airflow_accounts_run.py DAGS_FOLDER/airflow_accounts_dag.py
"""

from __future__ import annotations

import importlib.util
import json
import sys


def main(dag_file: str) -> int:
    from airflow.utils.db import initdb

    initdb()  # the metadata database of AIRFLOW_HOME (sqlite), as `airflow db migrate` makes it
    spec = importlib.util.spec_from_file_location("airflow_accounts_dag", dag_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    run = module.sqquid_accounts().test()
    instances = [{"task_id": ti.task_id, "map_index": ti.map_index, "name": ti.rendered_map_index,
                  "state": str(ti.state), "pool": ti.pool, "max_tries": ti.max_tries}
                 for ti in run.get_task_instances()]
    print(json.dumps({"state": str(run.state), "instances": sorted(instances, key=lambda t: (t["task_id"], t["map_index"]))}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
