"""The bundled catalog and the validation of bad ones (one-line errors naming entry and fix)."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from modelsync.errors import ModelsyncError
from modelsync.seed.catalog import (BUNDLED_CATALOG, HttpsSource, PaddleOCRSource, ZenodoSource,
                                    load_catalog, parse_only)

MASKTERIAL = (
    ["SEG_M2F_Synthetic_Data"]
    + [f"SEG_M2F_{m}" for m in ("GrapheneL", "GrapheneM", "GrapheneH", "WSe2", "WSe2L", "MoSe2", "WS2", "hBN_Thin")]
    + [f"CLS_AMM_{m}" for m in ("GrapheneL", "GrapheneM", "GrapheneH", "WSe2", "WSe2L", "MoSe2", "WS2", "hBN_Thin")]
    + [f"CLS_GMM_{m}" for m in ("GrapheneL", "GrapheneH", "WSe2", "WSe2L", "MoSe2", "WS2", "hBN_Thin")]
    + ["PP_L2_material_agnostic"]
)
FAMILY_BY_PREFIX = {"SEG_M2F": "m2f", "CLS_AMM": "amm", "CLS_GMM": "gmm", "PP_L2_": "l2"}


def test_bundled_catalog_has_all_25_maskterial_archives_and_paddleocr():
    catalog = load_catalog()
    assert catalog.path == BUNDLED_CATALOG
    by_name = {e.name: e for e in catalog.entries}
    assert len(MASKTERIAL) == 25 and set(by_name) == set(MASKTERIAL) | {"paddleocr"}
    for name in MASKTERIAL:
        entry = by_name[name]
        assert entry.source == ZenodoSource(record="15765516", file=f"{name}.zip")
        assert entry.family == next(f for p, f in FAMILY_BY_PREFIX.items() if name.startswith(p))
    assert by_name["SEG_M2F_GrapheneL"].requirements == (("config.yaml",), ("model.pth", "model_final.pth"))
    assert by_name["CLS_AMM_GrapheneL"].requirements == (("loc.npy",), ("cov.npy",), ("model.pth",), ("meta_data.json",))
    assert by_name["CLS_GMM_WS2"].requirements == (("contrast_dict.json",),)
    assert by_name["PP_L2_material_agnostic"].requirements == (("model.joblib",),)


def test_bundled_paddleocr_entry_pins_version_language_options_and_models():
    paddle = {e.name: e for e in load_catalog().entries}["paddleocr"]
    assert isinstance(paddle.source, PaddleOCRSource)
    assert paddle.source.paddleocr_version == "3.7.0"
    assert paddle.source.pipeline_kwargs() == {
        "lang": "es", "use_doc_orientation_classify": True, "use_doc_unwarping": True, "use_textline_orientation": True}
    assert paddle.source.expected_models == (
        "PP-LCNet_x1_0_doc_ori", "UVDoc", "PP-OCRv6_medium_det", "PP-LCNet_x1_0_textline_ori", "PP-OCRv6_medium_rec")


def test_default_selection_is_one_material_pipeline_plus_paddleocr():
    assert [e.name for e in load_catalog().select()] == [
        "SEG_M2F_GrapheneL", "CLS_AMM_GrapheneL", "PP_L2_material_agnostic", "paddleocr"]


def test_keys_the_infrastructure_reads_with_plain_pyyaml():
    doc = yaml.safe_load(BUNDLED_CATALOG.read_text())
    for entry in doc["models"]:
        assert isinstance(entry["name"], str) and isinstance(entry["enabled"], bool)
        assert isinstance(entry["approx_size_mb"], int) and entry["approx_size_mb"] > 0


def test_only_selects_any_entry_and_rejects_unknown_names():
    catalog = load_catalog()
    assert [e.name for e in catalog.select(parse_only(" CLS_GMM_WS2, paddleocr,,CLS_GMM_WS2 "))] == ["CLS_GMM_WS2", "paddleocr"]
    with pytest.raises(ModelsyncError, match=r"not in the catalog .*: SEG_NOPE; choose from: SEG_M2F_Synthetic_Data, "):
        catalog.select(["SEG_NOPE"])


GOOD_ENTRY = """\
  - name: A
    enabled: true
    approx_size_mb: 1
    family: l2
    source: {type: zenodo, record: 1, file: A.zip}
"""
HEAD = "families:\n  l2:\n    required_files: [model.joblib]\nmodels:\n"


def write(tmp_path, text):
    path = tmp_path / "catalog.yaml"
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize("entry, message", [
    ("  - name: B\n    enabled: yes please\n    approx_size_mb: 1\n    family: l2\n    source: {type: zenodo, record: 1, file: B.zip}\n",
     r"models\[1\] \(B\): enabled must be true or false, got 'yes please'; fix the value"),
    ("  - name: B\n    enabled: true\n    approx_size_mb: 0\n    family: l2\n    source: {type: zenodo, record: 1, file: B.zip}\n",
     r"models\[1\] \(B\): approx_size_mb: must be a positive whole number, got 0"),
    ("  - name: B\n    enabled: true\n    approx_size_mb: 1\n    family: xyz\n    source: {type: zenodo, record: 1, file: B.zip}\n",
     r"family 'xyz' is not defined; use one of: l2"),
    ("  - name: B\n    enabled: true\n    approx_size_mb: 1\n    familly: l2\n    source: {type: zenodo, record: 1, file: B.zip}\n",
     r"unknown key\(s\) familly; use only: "),
    ("  - name: B\n    enabled: true\n    approx_size_mb: 1\n    family: l2\n    source: {type: zenodo, record: abc, file: B.zip}\n",
     r"record 'abc' is not a Zenodo record id"),
    ("  - name: B\n    enabled: true\n    approx_size_mb: 1\n    family: l2\n    source: {type: https, url: 'http://example.org/b.zip', sha256: " + "a" * 64 + "}\n",
     r"url 'http://example.org/b.zip' is not https; use an https:// URL"),
    ("  - name: B\n    enabled: true\n    approx_size_mb: 1\n    family: l2\n    source: {type: https, url: 'https://example.org/b.zip', sha256: abc}\n",
     r"sha256 must be 64 hex digits"),
    ("  - name: B\n    enabled: true\n    approx_size_mb: 1\n    family: l2\n    source: {type: zenodo, record: 1, file: B.zip, sha256: 'abc'}\n",
     r"models\[1\] \(B\): source: sha256 must be 64 hex digits, got 'abc'; put the archive's sha256 in quotes"),
    ("  - name: B\n    enabled: true\n    approx_size_mb: 1\n    family: l2\n    source: {type: zenodo, record: 1, file: B.zip, sha256: " + "1" * 64 + "}\n",
     r"sha256 must be 64 hex digits, got 1111"),  # unquoted digits are a YAML number
    ("  - name: B\n    enabled: true\n    approx_size_mb: 1\n    family: l2\n    source: {type: ftp}\n",
     r"type 'ftp' is unknown; use type: zenodo, https or paddleocr"),
    ("  - name: ../B\n    enabled: true\n    approx_size_mb: 1\n    family: l2\n    source: {type: zenodo, record: 1, file: B.zip}\n",
     r"name '../B' is not a valid model name"),
    (GOOD_ENTRY, r"models\[1\] \(A\): duplicate name"),
    ("  - name: P\n    enabled: true\n    approx_size_mb: 1\n    source: {type: paddleocr, paddleocr_version: 3.7, lang: en, expected_models: [X]}\n",
     r"paddleocr_version 3.7 is not an exact version; quote a pin"),
    ("  - name: P\n    enabled: true\n    approx_size_mb: 1\n    source: {type: paddleocr, paddleocr_version: '3.7.0', lang: en, expected_models: []}\n",
     r"expected_models must list model folder names"),
    ("  - name: P\n    enabled: true\n    approx_size_mb: 1\n    source: {type: paddleocr, paddleocr_version: '3.7.0', lang: en, expected_models: [X], options: {lang: de}}\n",
     r"options must map PaddleOCR argument names"),
    ("  - name: P\n    enabled: true\n    approx_size_mb: 1\n    family: l2\n    source: {type: paddleocr, paddleocr_version: '3.7.0', lang: en, expected_models: [X]}\n",
     r"a paddleocr source has no family"),
])
def test_bad_entry_is_one_line_naming_entry_and_fix(tmp_path, entry, message):
    path = write(tmp_path, HEAD + GOOD_ENTRY + entry)
    with pytest.raises(ModelsyncError, match=message) as err:
        load_catalog(path)
    assert str(err.value).startswith(f"catalog {path}: ")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("text, message", [
    ("models: [\n", r"at line \d+; fix the YAML syntax"),
    ("- just a list\n", r"top level: expected a mapping, got list"),
    ("models: []\n", r"models: must be a non-empty list"),
    ("families:\n  l2:\n    required_files: [dir/model.joblib]\nmodels: []\n", r"families.l2: bad required file"),
])
def test_malformed_catalog_documents(tmp_path, text, message):
    with pytest.raises(ModelsyncError, match=message):
        load_catalog(write(tmp_path, text))


def test_missing_catalog_file_says_how_to_point_at_one(tmp_path):
    with pytest.raises(ModelsyncError, match=r"not found; pass --catalog FILE or set MODELSYNC_CATALOG"):
        load_catalog(tmp_path / "nope.yaml")


def test_https_source_and_size_bound_override(tmp_path):
    sha = "ab" * 32
    catalog = load_catalog(write(tmp_path, HEAD + f"""\
  - name: H
    enabled: false
    approx_size_mb: 3
    max_extracted_mb: 10
    family: l2
    source: {{type: https, url: 'https://example.org/x/h.zip?download=1', sha256: {sha.upper()}}}
"""))
    entry = catalog.entries[0]
    assert entry.source == HttpsSource(url="https://example.org/x/h.zip?download=1", sha256=sha)
    assert entry.source.file == "h.zip" and entry.max_extracted_mb == 10 and catalog.select() == []


# -- security review, finding B ---------------------------------------------------------------

def https_entry(url: str) -> str:
    return ("  - name: B\n    enabled: true\n    approx_size_mb: 1\n    family: l2\n"
            f"    source: {{type: https, url: '{url}', sha256: {'a' * 64}}}\n")


@pytest.mark.parametrize("url", [
    "http://localhost.attacker.example/b.zip",
    "http://127.0.0.1.attacker.example/b.zip",
    "http://127.0.0.1@attacker.example/b.zip",
    "http://[::1].attacker.example/b.zip",
    "http://localhost:notaport/b.zip",
    "https:b.zip",
])
def test_plain_http_only_to_exactly_the_local_hosts(tmp_path, url):
    with pytest.raises(ModelsyncError, match=r"is not https; use an https:// URL \(plain http only to 127\.0\.0\.1, "
                                             r"localhost or \[::1\]\)"):
        load_catalog(write(tmp_path, HEAD + https_entry(url)))


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/b.zip", "http://localhost/b.zip", "http://[::1]:9/b.zip",
                                 "http://LOCALHOST/b.zip", "https://example.org/b.zip"])
def test_local_http_and_https_urls_are_accepted(tmp_path, url):
    assert load_catalog(write(tmp_path, HEAD + https_entry(url))).entries[0].source.url == url


def test_download_cap_and_file_limit_keys(tmp_path):
    catalog = load_catalog(write(tmp_path, "defaults: {max_extracted_files: 50}\n" + HEAD + GOOD_ENTRY + """\
  - name: B
    enabled: true
    approx_size_mb: 3
    max_download_mb: 7
    max_extracted_files: 9
    family: l2
    source: {type: zenodo, record: 1, file: B.zip}
"""))
    a, b = catalog.entries
    assert (a.max_extracted_files, a.max_download_mb, a.download_cap_mb) == (50, None, 4)  # 4 x approx_size_mb
    assert (b.max_extracted_files, b.max_download_mb, b.download_cap_mb) == (9, 7, 7)
    assert load_catalog(write(tmp_path, HEAD + GOOD_ENTRY)).entries[0].max_extracted_files == 10_000
    with pytest.raises(ModelsyncError, match=r"models\[0\] \(A\): max_download_mb: must be a positive whole number"):
        load_catalog(write(tmp_path, HEAD + GOOD_ENTRY + "    max_download_mb: -1\n"))
