"""The connection form the Airflow UI shows for ``kling``, on whichever Airflow runs the suite.

Airflow 3.2+ read the form from the provider info; 3.0 and 3.1 from the hook's
``get_connection_form_widgets`` / ``get_ui_field_behaviour``, and only with Flask-AppBuilder
installed (the UI mocks its fields, as these tests do with stand-in modules). ``make
test-airflow-min`` runs this on 3.0, ``make test`` on 3.3.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest

from kling_provider._provider_info import PROVIDER_INFO
from kling_provider.hooks.kling import KlingHook

CONNECTION = PROVIDER_INFO["connection-types"][0]


class _Field:
    """Stands in for a wtforms field class; an instance is the unbound field Airflow reads."""

    widget: Any = None

    def __init__(self, label: Any = None, **kwargs: Any) -> None:
        self.label = label
        self.kwargs = kwargs
        self.field_class = type(self)


class _Widget:
    pass


def _module(name: str, **attrs: Any) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    return module


@pytest.fixture
def fab_stand_ins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """wtforms, flask_babel and flask_appbuilder as far as a hook's form methods and Airflow's UI use them."""
    fields = {
        name: type(name, (_Field,), {}) for name in ("StringField", "IntegerField", "PasswordField", "BooleanField")
    }
    validators = _module("wtforms.validators", Optional=type("Optional", (), {}), any_of=lambda values: values)
    simple = _module("wtforms.fields.simple", **fields)
    wtforms_fields = _module("wtforms.fields", simple=simple, **fields)
    modules = {
        "wtforms": _module("wtforms", fields=wtforms_fields, validators=validators, **fields),
        "wtforms.fields": wtforms_fields,
        "wtforms.fields.simple": simple,
        "wtforms.validators": validators,
        "flask_babel": _module("flask_babel", lazy_gettext=str),
        "flask_appbuilder": _module("flask_appbuilder"),
        "flask_appbuilder.fieldwidgets": _module(
            "flask_appbuilder.fieldwidgets",
            BS3TextFieldWidget=_Widget,
            BS3TextAreaFieldWidget=_Widget,
            BS3PasswordFieldWidget=_Widget,
        ),
    }
    modules["flask_appbuilder"].fieldwidgets = modules["flask_appbuilder.fieldwidgets"]
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    yield


def test_hook_form_methods_say_what_the_provider_info_says(fab_stand_ins: None) -> None:
    widgets = KlingHook.get_connection_form_widgets()
    assert set(widgets) == set(CONNECTION["conn-fields"])
    for name, field in widgets.items():
        assert field.label == CONNECTION["conn-fields"][name]["label"]
        assert field.kwargs["description"] == CONNECTION["conn-fields"][name]["description"]
    behaviour = KlingHook.get_ui_field_behaviour()
    assert behaviour == {
        "hidden_fields": CONNECTION["ui-field-behaviour"]["hidden-fields"],
        "relabeling": CONNECTION["ui-field-behaviour"]["relabeling"],
        "placeholders": CONNECTION["ui-field-behaviour"]["placeholders"],
    }


def test_the_ui_shows_the_kling_form_on_this_airflow(fab_stand_ins: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService
    from airflow.providers_manager import ProvidersManager

    try:
        # What the UI's connection form endpoint reads (uncached).
        metadata = HookMetaService.hook_meta_data.__wrapped__()
    finally:
        monkeypatch.undo()  # the stand-ins go; hooks Airflow read with them are forgotten
        manager = ProvidersManager()
        manager._cleanup()
        manager._init_airflow_core_hooks()
    [kling] = [meta for meta in metadata if meta.connection_type == "kling"]
    assert kling.hook_class_name == "kling_provider.hooks.kling.KlingHook"
    extra = {name: dict(value) for name, value in (kling.extra_fields or {}).items()}
    assert set(extra) == {"files_host", "rate_limit_rpm", "timeout"}, extra
    assert extra["files_host"]["schema"]["title"] == "Files host"
    standard = kling.standard_fields
    assert standard is not None and standard.password is not None and standard.password.title == "API key"
    assert standard.login is not None and standard.login.hidden
