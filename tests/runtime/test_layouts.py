"""modelsync.layouts: the bundled layouts, strict validation of a layouts file, placement and collisions.

The module is pure (the CDK app imports it at synth), so most of it is tested in-process on real
files; the CLI's handling of a bad file is in test_view.py."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap

import pytest

import modelsync.layouts as layouts_module
from modelsync.errors import ModelsyncError
from modelsync.layouts import LayoutError, Placement, load_layouts


@pytest.fixture(scope="module")
def bundled():
    return load_layouts()


def write_layouts(tmp_path, body: str):
    path = tmp_path / "layouts.yaml"
    path.write_text(textwrap.dedent(body))
    return path


def one_line(exc: Exception) -> str:
    message = str(exc)
    assert "\n" not in message
    return message


def test_the_module_imports_only_stdlib_yaml_errors_and_config():
    """The CDK app imports it at synth: no boto3, no other modelsync module."""
    probe = ("import sys, modelsync.layouts as l; l.load_layouts().get('maskterial').check(['SEG_M2F_X']); "
             "print(' '.join(sorted(m for m in sys.modules if m.startswith(('modelsync', 'boto')))))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == ["modelsync", "modelsync.config", "modelsync.errors", "modelsync.layouts"]
    tree = ast.parse(open(layouts_module.__file__).read())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {"." * n.level + (n.module or "") for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported <= {"__future__", "os", "re", "string", "dataclasses", "pathlib", "typing", "yaml",
                        ".errors", ".config"}


def test_bundled_layouts_place_the_catalog_names_where_their_apps_look(bundled):
    assert bundled.names() == ["flat", "maskterial", "paddlex"]
    maskterial = bundled.get("maskterial")
    assert [p.path for p in maskterial.place("SEG_M2F_Synthetic_Data")] == ["segmentation_models/M2F/Synthetic_Data"]
    assert maskterial.place("CLS_AMM_hBN_Thin") == [Placement("classification_models/AMM/hBN_Thin", "")]
    assert maskterial.place("CLS_GMM_WSe2L") == [Placement("classification_models/GMM/WSe2L", "")]
    assert maskterial.place("PP_L2_material_agnostic") == [Placement("postprocessing_models/L2/material_agnostic", "")]
    assert maskterial.app_environment("/maskterial/data/models") == {} and not maskterial.app_writable
    flat = bundled.get("flat")
    assert flat.place("SEG_M2F_GrapheneL") == [Placement("SEG_M2F_GrapheneL", "")]
    assert flat.app_environment("/srv/models") == {"MODEL_PATH": "/srv/models"} and not flat.app_writable
    paddlex = bundled.get("paddlex")
    (placement,) = paddlex.place("paddleocr")
    assert placement == Placement("official_models/{entry}", "official_models/*")
    assert placement.each_entry and placement.parent == "official_models" and placement.source_dir == "official_models"
    assert placement.expand(["b", "a"]) == [Placement("official_models/a", "official_models/a"),
                                            Placement("official_models/b", "official_models/b")]
    assert paddlex.app_writable and paddlex.app_environment("/var/cache/paddlex") == \
        {"PADDLE_PDX_CACHE_HOME": "/var/cache/paddlex"}


def test_every_catalog_model_fits_the_layout_of_its_app(bundled):
    from modelsync.seed.catalog import PaddleOCRSource, load_catalog

    entries = load_catalog().entries
    masks = [e.name for e in entries if e.family]
    paddles = [e.name for e in entries if isinstance(e.source, PaddleOCRSource)]
    assert masks and paddles
    bundled.get("maskterial").check(masks)
    bundled.get("paddlex").check(paddles)
    bundled.get("flat").check([e.name for e in entries])


def test_a_model_no_rule_matches_is_one_line_naming_model_layout_and_fix(bundled):
    with pytest.raises(LayoutError) as caught:
        bundled.get("maskterial").place("paddleocr")
    assert one_line(caught.value) == ("layout 'maskterial' cannot place model 'paddleocr': no rule matches it; "
                                      "use --layout flat or add a rule to the layouts file")
    with pytest.raises(LayoutError, match="layout 'maskterial' cannot place model 'SEG_M2F'"):
        bundled.get("maskterial").check(["SEG_M2F_GrapheneL", "SEG_M2F"])  # no X after the type
    assert isinstance(caught.value, ModelsyncError) and caught.value.exit_code == 2


def test_unknown_layout_names_the_valid_ones(bundled):
    with pytest.raises(ModelsyncError) as caught:
        bundled.get("maskterrial")
    assert "unknown layout 'maskterrial'" in one_line(caught.value)
    assert "flat, maskterial, paddlex" in str(caught.value)


def test_a_name_that_would_give_an_unsafe_path_is_refused(bundled):
    with pytest.raises(LayoutError, match=r"gives the path 'segmentation_models/M2F/\.\.', which has an empty, "):
        bundled.get("maskterial").place("SEG_M2F_..")


def test_collisions_same_path_nested_paths_and_shared_entry_directories(tmp_path):
    layouts = load_layouts(write_layouts(tmp_path, """
        layouts:
          clash:
            description: d
            rules:
              - {match: 'one|two', path: same}
              - {match: 'outer', path: a}
              - {match: 'inner', path: a/b}
              - {match: 'pkg.*', source: 'lib/*', path: 'shared/{entry}'}
              - {match: 'intruder', path: shared/x}
              - {match: 'top.*', source: '*', path: '{entry}'}
    """)).get("clash")
    with pytest.raises(LayoutError) as caught:
        layouts.check(["one", "two"])
    assert one_line(caught.value).startswith("layout 'clash': models 'one' and 'two' both land on 'same'")
    with pytest.raises(LayoutError, match="models 'outer' and 'inner' land on 'a/b' inside 'a'"):
        layouts.check(["outer", "inner"])
    layouts.check(["pkg1", "pkg2"])  # two models may fill one directory (their entries are checked at build)
    with pytest.raises(LayoutError, match="land on 'shared/x' inside 'shared'"):
        layouts.check(["pkg1", "intruder"])
    with pytest.raises(LayoutError, match="inside 'the view'"):
        layouts.check(["top1", "outer"])
    with pytest.raises(LayoutError, match="model 'one' is given twice"):
        layouts.check(["one", "one"])


@pytest.mark.parametrize("body, fragments", [
    ("layouts: {flat: {description: d, rules: [{match: '.+', path: '{name}'}], colour: red}}",
     ["layouts.flat: unknown key(s) colour", "use only: app_environment, app_writable, description, rules"]),
    ("layouts: {flat: {description: d, rules: [{match: '(', path: '{name}'}]}}",
     ["layouts.flat.rules[0].match: bad regex '('", "fix the regular expression"]),
    ("layouts: {flat: {description: d, rules: [{match: '.+', path: '/abs/{name}'}]}}",
     ["layouts.flat.rules[0].path: '/abs/{name}' is absolute"]),
    ("layouts: {flat: {description: d, rules: [{match: '.+', path: 'a/../{name}'}]}}",
     ["layouts.flat.rules[0].path: 'a/../{name}' has an empty, '.' or '..' part"]),
    ("layouts: {flat: {description: d, rules: [{match: '.+', path: '.modelsync-view/{name}'}]}}",
     ["starts with '.modelsync'"]),
    ("layouts: {flat: {description: d, rules: [{match: '.+', path: '{typ}/{name}'}]}}",
     ["{typ} in '{typ}/{name}' is not defined", "use one of {name}"]),
    ("layouts: {flat: {description: d, rules: [{match: '(?P<t>.+)', path: '{t!r}'}]}}",
     ["is not a plain name"]),
    ("layouts: {flat: {description: d, rules: [{match: '.+', path: '{name'}]}}", ["bad braces"]),
    ("layouts: {p: {description: d, rules: [{match: '.+', source: 'om/*', path: 'om/{name}'}]}}",
     ["does not end in '{entry}'"]),
    ("layouts: {p: {description: d, rules: [{match: '.+', path: 'om/{entry}'}]}}",
     ["{entry} in 'om/{entry}' is not defined"]),
    ("layouts: {p: {description: d, rules: [{match: '.+', source: '../x', path: '{name}'}]}}",
     ["layouts.p.rules[0].source: '../x' has an empty, '.' or '..' part"]),
    ("layouts: {p: {description: d, rules: [{match: '.+', source: 'a/*/b', path: '{name}'}]}}",
     ["has a '*' before its end"]),
    ("layouts: {p: {description: d, app_writable: 'yes', rules: [{match: '.+', path: '{name}'}]}}",
     ["app_writable: must be true or false"]),
    ("layouts: {p: {description: d, app_environment: {'1BAD': x}, rules: [{match: '.+', path: '{name}'}]}}",
     ["bad variable name '1BAD'"]),
    ("layouts: {p: {description: d, app_environment: {HOME: '{root}'}, rules: [{match: '.+', path: '{name}'}]}}",
     ["{root} in '{root}' is not defined", "use one of {view}"]),
    ("layouts: {Flat: {description: d, rules: [{match: '.+', path: '{name}'}]}}", ["layouts.Flat: bad layout name"]),
    ("layouts: {p: {description: d, rules: []}}", ["layouts.p.rules: must be a non-empty list"]),
    ("layouts: {p: {rules: [{match: '.+', path: '{name}'}]}}", ["layouts.p: missing description"]),
    ("layouts: {}", ["layouts: must map layout names to layouts"]),
    ("views: {}", ["top level: missing layouts"]),
    ("layouts: [flat", ["at line 1", "fix the YAML syntax"]),
])
def test_a_bad_layouts_file_is_one_line_naming_the_file_the_place_and_the_fix(tmp_path, body, fragments):
    path = write_layouts(tmp_path, body)
    with pytest.raises(ModelsyncError) as caught:
        load_layouts(path)
    message = one_line(caught.value)
    assert message.startswith(f"layouts file {path}: ")
    for fragment in fragments:
        assert fragment in message, message


def test_a_missing_layouts_file_says_how_to_point_at_another(tmp_path):
    with pytest.raises(ModelsyncError, match="not found; pass --layouts FILE or set MODELSYNC_LAYOUTS"):
        load_layouts(tmp_path / "nope.yaml")
    assert load_layouts(os.fspath(layouts_module.BUNDLED_LAYOUTS)).names() == load_layouts(None).names()
