"""The legacy form (locations keyed by name) to the list form that `dagster-cloud ci` reads, as
a text edit: comments, blank lines, indentation style and line endings stay as they were."""

from __future__ import annotations

import pytest
from dagster_cloud_cli.config.models import load_dagster_cloud_yaml

from migration_pipeline.cloud_yaml.convert import to_list_form
from migration_pipeline.cloud_yaml.model import load_cloud_yaml
from migration_pipeline.lib.problems import InvalidInput


def convert(text: str) -> str:
    converted = to_list_form(load_cloud_yaml(text))
    load_dagster_cloud_yaml(converted)  # what `dagster-cloud ci` itself reads
    return converted


def test_keys_keep_their_column_and_comments_stay():
    text = (
        "# top comment\n"
        "locations:\n"
        "  # the BI team\n"
        "  analytics:   # owned by BI\n"
        "    package_name: analytics  # the package\n"
        "    working_directory: analytics\n"
        "\n"
        "  reports:\n"
        "    python_file: reports.py\n"
    )
    assert convert(text) == (
        "# top comment\n"
        "locations:\n"
        "  # the BI team\n"
        "  - location_name: analytics   # owned by BI\n"
        "    code_source:\n"
        "      package_name: analytics  # the package\n"
        "    working_directory: analytics\n"
        "\n"
        "  - location_name: reports\n"
        "    code_source:\n"
        "      python_file: reports.py\n"
    )


def test_four_space_indentation_and_crlf():
    text = "locations:\r\n    etl:\r\n        module_name: etl.defs\r\n        attribute: defs\r\n"
    assert convert(text) == (
        "locations:\r\n      - location_name: etl\r\n"
        "        code_source:\r\n            module_name: etl.defs\r\n"
        "        attribute: defs\r\n"
    )


def test_a_one_line_flow_location_becomes_a_flow_item():
    text = "locations:\n  etl: {package_name: etl, working_directory: src}  # short\n"
    assert convert(text) == (
        "locations:\n  - {location_name: etl, code_source: {package_name: etl},"
        " working_directory: src}  # short\n"
    )


def test_the_list_form_is_left_as_it_is():
    text = "locations:\n- location_name: a\n  code_source: {package_name: a}\n"
    assert to_list_form(load_cloud_yaml(text)) == text


@pytest.mark.parametrize(
    "text,line",
    [
        ("locations:\n  a: &b\n    package_name: a\n  c: *b\n", 2),
        (
            "locations:\n  a: &b\n    package_name: a\n  c:\n    <<: *b\n    working_directory: c\n",
            2,
        ),
        ("locations: {a: {package_name: a}}\n", 1),
        ("locations:\n  a:\n    package_name:\n      a\n", 3),
    ],
)
def test_layouts_it_cannot_convert_are_refused_with_the_line(text, line):
    with pytest.raises(InvalidInput) as raised:
        to_list_form(load_cloud_yaml(text))
    message = str(raised.value)
    assert message.startswith(f"dagster_cloud.yaml:{line}: locations")
    assert "cannot convert this layout" in message and "nothing was written" in message
