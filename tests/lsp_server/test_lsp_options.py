"""The options structure: defaults, camelCase and snake_case keys, an `infill` section, and
invalid values that warn and fall back instead of failing."""

from dataclasses import fields

import pytest

from lsp_server import options as options_module
from lsp_server.options import ServerOptions, parse_options


def test_no_options_are_the_documented_defaults():
    assert parse_options(None) == (ServerOptions(), [])
    assert parse_options({}) == (ServerOptions(), [])
    defaults = ServerOptions()
    assert (defaults.engine, defaults.max_tokens, defaults.debounce_ms, defaults.multiline) == \
        ("auto", 64, None, "auto")


def test_the_debounce_follows_the_models_device_unless_set():
    auto = ServerOptions()
    assert auto.debounce_for("cuda:0") == 0.0  # a GPU answers in a few ms: no wait
    assert auto.debounce_for("cpu") == auto.debounce_for(None) == 0.025  # the CPU, or loading
    fixed, warnings = parse_options({"debounceMs": 40})
    assert warnings == [] and fixed.debounce_for("cuda:0") == fixed.debounce_for("cpu") == 0.04
    assert parse_options({"debounceMs": None}) == (ServerOptions(), [])


def test_every_option_is_documented_in_the_module_docstring():
    for f in fields(ServerOptions):
        assert f"| {options_module._camel(f.name)} " in options_module.__doc__


def test_camel_case_snake_case_and_an_infill_section():
    camel, _ = parse_options({"maxTokens": 12, "debounceMs": 0, "contextChars": 1000})
    snake, _ = parse_options({"max_tokens": 12, "debounce_ms": 0, "context_chars": 1000})
    section, _ = parse_options({"infill": {"maxTokens": 12, "debounceMs": 0, "contextChars": 1000}})
    assert camel == snake == section
    assert (camel.max_tokens, camel.debounce_ms, camel.context_chars) == (12, 0, 1000)


def test_model_options_and_the_model_config():
    options, warnings = parse_options({"engine": "diffusion", "target": "/m/t", "device": "cuda:1",
                                       "dtype": "bf16", "trustRemoteCode": True,
                                       "diffusionLength": "pad"})
    assert warnings == []
    config = options.model_config()
    assert (config.target, config.device, config.dtype, config.trust_remote_code,
            config.diffusion_length) == ("/m/t", "cuda:1", "bf16", True, "pad")
    assert ServerOptions().model_config().diffusion_length == "ar"
    assert options.models_differ(ServerOptions())
    assert not ServerOptions(max_tokens=3).models_differ(ServerOptions())


@pytest.mark.parametrize("key,value", [
    ("engine", "gpt"), ("engine", 3), ("maxTokens", 0), ("maxTokens", 5000), ("maxTokens", "64"),
    ("maxTokens", True), ("maxTokens", 2.5), ("debounceMs", -1), ("contextChars", 10),
    ("multiline", "sometimes"), ("device", "tpu"), ("device", 0), ("dtype", "int4"),
    ("warmup", "yes"), ("target", 42), ("logDir", "a\x00b"), ("timeoutMs", None),
    ("diffusionLength", "oracle"),
])
def test_an_invalid_value_warns_and_keeps_the_default(key, value):
    options, warnings = parse_options({key: value, "maxTokens": 7} if key != "maxTokens" else {key: value})
    assert len(warnings) == 1 and key in warnings[0] and "invalid" in warnings[0]
    expected = ServerOptions() if key == "maxTokens" else ServerOptions(max_tokens=7)
    assert options == expected


def test_unknown_keys_and_non_objects_warn():
    options, warnings = parse_options({"colour": "red", 3: 4})
    assert options == ServerOptions() and len(warnings) == 2
    for raw in ([1, 2], "fast", 3):
        options, warnings = parse_options(raw)
        assert options == ServerOptions() and len(warnings) == 1


def test_an_invalid_value_falls_back_to_the_given_defaults():
    base = ServerOptions(max_tokens=9, device="cpu")
    options, warnings = parse_options({"maxTokens": -1}, base)
    assert options == base and len(warnings) == 1 and "using 9" in warnings[0]


def test_nulls_and_empty_strings_mean_the_shipped_models_and_auto_device():
    options, warnings = parse_options({"target": None, "diffusion": "", "device": "auto", "dtype": None})
    assert warnings == [] and options == ServerOptions()


def test_multiline_policy_maps_to_the_request_flag():
    assert [ServerOptions(multiline=m).multiline_flag for m in ("auto", "always", "never")] == \
        [None, True, False]
