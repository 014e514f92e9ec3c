"""Serverless-era projects written for the tests, varied the way real repositories are: both
forms of dagster_cloud.yaml, defaults, anchors and merges, flow and block style, comments,
quoting, indentation styles, CRLF, hooks, workflows, and the Serverless-only features."""

from __future__ import annotations

from textwrap import dedent


def d(text: str) -> str:
    return dedent(text).lstrip("\n")


REQ = "dagster==1.9.6\npandas\n"
PYPROJECT = d("""
    [project]
    name = "analytics"
    version = "0.1.0"
    dependencies = ["dagster==1.9.6", "dagster-cloud==1.9.6"]
""")
DEFS = "import dagster as dg\n\ndefs = dg.Definitions(assets=[])\n"
WORKFLOW = d("""
    name: Serverless Prod Deployment
    on:
      push:
        branches: [main]
    env:
      DAGSTER_CLOUD_URL: "https://acme.dagster.cloud"
      DAGSTER_CLOUD_API_TOKEN: ${{ secrets.DAGSTER_CLOUD_API_TOKEN }}
      ENABLE_FAST_DEPLOYS: 'true'
      PYTHON_VERSION: '3.11'
      DAGSTER_CLOUD_FILE: 'dagster_cloud.yaml'
    jobs:
      dagster_cloud_default_deploy:
        runs-on: ubuntu-22.04
        steps:
          - uses: dagster-io/dagster-cloud-action/actions/utils/prerun@v0.1
          - uses: dagster-io/dagster-cloud-action/actions/serverless_prod_deploy@v0.1
""")

CORPUS: dict[str, dict[str, str]] = {
    "single_package": {
        "dagster_cloud.yaml": d("""
            locations:
              - location_name: analytics
                code_source:
                  package_name: analytics
        """),
        "requirements.txt": REQ,
        "analytics/__init__.py": DEFS,
    },
    "two_locations_hooks": {
        "dagster_cloud.yaml": d("""
            # Two teams, one repo.
            locations:
              - location_name: marketing
                code_source:
                  package_name: marketing
                build:
                  directory: ./marketing

              - location_name: finance
                code_source:
                  package_name: finance
                build:
                  directory: ./finance
        """),
        "marketing/pyproject.toml": PYPROJECT,
        "marketing/dagster_cloud_pre_install.sh": "apt-get update && apt-get install -y libpq-dev\n",
        "marketing/dagster_cloud_post_install.sh": "python -m nltk.downloader punkt\n",
        "marketing/marketing/__init__.py": DEFS,
        "finance/setup.py": "from setuptools import setup\nsetup(name='finance', install_requires=['dagster'])\n",
        "finance/finance/__init__.py": DEFS,
    },
    "legacy_mapping": {
        "dagster_cloud.yaml": d("""
            locations:
              data_eng:
                python_file: data_eng/repo.py
                working_directory: data_eng
              ml:
                package_name: ml_pipelines
        """),
        "requirements.txt": REQ,
        "data_eng/repo.py": DEFS,
    },
    "defaults_block": {
        "dagster_cloud.yaml": d("""
            defaults:
              build:
                directory: ./pipelines
              working_directory: ./pipelines
            locations:
              - location_name: ingest
                code_source:
                  module_name: pipelines.ingest
              - location_name: transform
                code_source:
                  module_name: pipelines.transform
        """),
        "pipelines/requirements.txt": REQ,
        "pipelines/pipelines/ingest.py": DEFS,
    },
    "anchor_alias_build": {
        "dagster_cloud.yaml": d("""
            locations:
              - location_name: raw
                code_source:
                  package_name: raw
                build: &shared_build
                  directory: ./etl
              - location_name: curated
                code_source:
                  package_name: curated
                build: *shared_build
        """),
        "etl/requirements.txt": REQ,
    },
    "merge_keys": {
        "dagster_cloud.yaml": d("""
            defaults: &common
              working_directory: ./src
            locations:
              - <<: *common
                location_name: alpha
                code_source:
                  module_name: alpha.defs
              - <<: *common
                location_name: beta
                code_source:
                  module_name: beta.defs
        """),
        "src/alpha/defs.py": DEFS,
    },
    "registry_already_set": {
        "dagster_cloud.yaml": d("""
            locations:
              - location_name: reporting
                code_source:
                  package_name: reporting
                build:
                  directory: .
                  registry: ghcr.io/legacy/reporting  # from an earlier Hybrid trial
        """),
        "pyproject.toml": PYPROJECT,
    },
    "build_yaml_name": {
        "build.yaml": d("""
            locations:
              jobs:
                package_name: jobs
                build:
                  directory: .
        """),
        "requirements.txt": REQ,
    },
    "heavily_commented": {
        "dagster_cloud.yaml": d("""
            # dagster_cloud.yaml for Acme's data platform
            # Maintainer: data-platform@acme.test

            locations:
              # --- the core warehouse models ---------------------------------
              - location_name: warehouse   # dbt + assets
                code_source:
                  package_name: warehouse  # see warehouse/__init__.py
                build:
                  directory: ./warehouse   # the package lives here
                # working_directory: ./warehouse   (not needed any more)

              # --- experiments ------------------------------------------------
              - location_name: sandbox
                code_source:
                  python_file: sandbox/defs.py

            # end of file
        """),
        "warehouse/requirements.txt": REQ,
        "sandbox/defs.py": DEFS,
    },
    "four_space_indent": {
        "dagster_cloud.yaml": d("""
            locations:
                -   location_name: billing
                    code_source:
                        package_name: billing
                    build:
                        directory: billing
                -   location_name: usage
                    code_source:
                        package_name: usage
                    build:
                        directory: usage
        """),
        "billing/requirements.txt": REQ,
        "usage/pyproject.toml": PYPROJECT,
    },
    "unindented_sequence": {
        "dagster_cloud.yaml": d("""
            locations:
            - location_name: ops
              code_source:
                package_name: ops
              build:
                directory: .
            - location_name: quality
              code_source:
                package_name: quality
        """),
        "requirements.txt": REQ,
    },
    "queue_exe_attribute": {
        "dagster_cloud.yaml": d("""
            locations:
              - location_name: gpu_training
                code_source:
                  python_file: train/repo.py
                working_directory: train
                executable_path: /usr/local/bin/python3.11
                attribute: training_repo
                agent_queue: gpu
        """),
        "requirements.txt": REQ,
        "train/repo.py": DEFS,
    },
    "nested_monorepo": {
        "dagster_cloud.yaml": d("""
            locations:
              - location_name: team_a
                code_source:
                  module_name: team_a.definitions
                build:
                  directory: projects/team_a
              - location_name: team_b
                code_source:
                  module_name: team_b.definitions
                build:
                  directory: projects/team_b
              - location_name: team_c
                code_source:
                  module_name: team_c.definitions
                build:
                  directory: projects/team_c
              - location_name: team_d
                code_source:
                  module_name: team_d.definitions
                build:
                  directory: projects/team_d
              - location_name: team_e
                code_source:
                  module_name: team_e.definitions
                build:
                  directory: projects/team_e
        """),
        **{f"projects/team_{t}/pyproject.toml": PYPROJECT for t in "abcde"},
        **{f"projects/team_{t}/team_{t}/definitions.py": DEFS for t in "abcde"},
    },
    "autoload_defs": {
        "dagster_cloud.yaml": d("""
            locations:
              - location_name: components_project
                code_source:
                  autoload_defs_module_name: components_project.defs
                build:
                  directory: .
        """),
        "pyproject.toml": PYPROJECT,
    },
    "flow_style": {
        "dagster_cloud.yaml": d("""
            locations:
              - location_name: events
                code_source: {package_name: events}
                build: {directory: ./events}
              - {location_name: sessions, code_source: {package_name: sessions}}
        """),
        "events/requirements.txt": REQ,
        "requirements.txt": REQ,
    },
    "quoted_values": {
        "dagster_cloud.yaml": d("""
            locations:
              - location_name: "crm"
                code_source:
                  package_name: 'crm'
                build:
                  directory: "./crm"
                working_directory: './crm'
        """),
        "crm/requirements.txt": REQ,
    },
    "pex_leftovers": {
        "dagster_cloud.yaml": d("""
            locations:
              - location_name: legacy_etl
                code_source:
                  package_name: legacy_etl
                pex_bundle: true
                pex_metadata:
                  pex_tag: files=abc123:deps=def456
                  python_version: "3.10"
                build:
                  directory: .
        """),
        "setup.py": "from setuptools import setup\nsetup(name='legacy_etl')\n",
    },
    "existing_dockerfile": {
        "dagster_cloud.yaml": d("""
            locations:
              - location_name: custom
                code_source:
                  package_name: custom
                build:
                  directory: ./custom
        """),
        "custom/Dockerfile": "FROM python:3.11-slim\nCOPY . .\nRUN pip install . dagster-cloud\n",
        "custom/setup.py": "from setuptools import setup\nsetup(name='custom')\n",
    },
    "serverless_workflow": {
        "dagster_cloud.yaml": d("""
            locations:
              - location_name: prod_jobs
                code_source:
                  package_name: prod_jobs
        """),
        ".github/workflows/dagster-cloud-deploy.yml": WORKFLOW,
        ".github/workflows/tests.yml": "name: tests\non: [push]\njobs: {}\n",
        "requirements.txt": REQ,
    },
    "gitlab_python_version": {
        "dagster_cloud.yaml": d("""
            locations:
              - location_name: geo
                code_source:
                  package_name: geo
        """),
        ".gitlab-ci.yml": "deploy:\n  script:\n    - dagster-cloud serverless deploy-python-executable --python-version 3.10 --location-name geo\n",
        "requirements.txt": REQ,
    },
    "serverless_features_in_code": {
        "dagster_cloud.yaml": d("""
            locations:
              - location_name: features
                code_source:
                  package_name: features
        """),
        "features/__init__.py": d("""
            import dagster as dg
            from dagster_cloud.serverless import serverless_io_manager

            @dg.job(tags={"dagster/isolation": "disabled"})
            def quick_job():
                pass

            defs = dg.Definitions(jobs=[quick_job], resources={"io_manager": serverless_io_manager})
        """),
        "requirements.txt": REQ,
    },
    "image_remnant": {
        "dagster_cloud.yaml": d("""
            locations:
              - location_name: pinned
                image: ghcr.io/acme/pinned:2024-01-01
                code_source:
                  package_name: pinned
        """),
        "requirements.txt": REQ,
    },
    "crlf_line_endings": {
        "dagster_cloud.yaml": "locations:\r\n  - location_name: windows_team\r\n    code_source:\r\n"
        "      package_name: windows_team\r\n    build:\r\n      directory: .\r\n",
        "requirements.txt": REQ,
    },
    "document_marker_no_final_newline": {
        "dagster_cloud.yaml": "---\nlocations:\n  - location_name: tidy\n    code_source:\n"
        "      package_name: tidy\n# trailing comment",
        "requirements.txt": REQ,
    },
    "odd_location_names": {
        "dagster_cloud.yaml": d("""
            locations:
              - location_name: Data_Science-Prod
                code_source:
                  package_name: data_science
                build:
                  directory: data_science
              - location_name: ETL.v2
                code_source:
                  package_name: etl_v2
                build:
                  directory: etl_v2
        """),
        "data_science/requirements.txt": REQ,
        "etl_v2/requirements.txt": REQ,
    },
    "defaults_with_anchor_alias_mix": {
        "dagster_cloud.yaml": d("""
            defaults:
              build:
                directory: .
            locations:
              - location_name: one
                code_source: &src
                  package_name: shared_pkg
              - location_name: two
                code_source: *src
                working_directory: two
        """),
        "pyproject.toml": PYPROJECT,
    },
    "blank_lines_between_locations": {
        "dagster_cloud.yaml": d("""
            locations:

              - location_name: notes
                code_source:
                  python_file: notes.py
                build:
                  directory: .


              - location_name: last
                code_source:
                  python_file: last.py
        """),
        "requirements.txt": REQ,
    },
}

TARGET_REGISTRIES = {
    "kubernetes": "ghcr.io/acme",
    "ecs": "123456789012.dkr.ecr.us-east-1.amazonaws.com/acme",
    "docker": "localhost:5000/acme",
    "azure": "acmedata.azurecr.io/dagster",
    "local": None,
}
