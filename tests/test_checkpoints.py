"""compressed-tensors checkpoints: writer -> reader is bit-exact; bad files give errors naming the tensor."""
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

import qlinear
from qlinear.checkpoints import CheckpointError, NotExpressible, load_quantized, save_compressed_tensors
from qlinear.formats import dequantize, fake_quantize
from qlinear.layers import QuantizedLinear

WRITABLE = ["fp8_per_tensor", "fp8_per_channel", "fp8_per_block", "int8_per_channel", "int8_asym_act", "fp8_a16",
            "nvfp4_a16", "mxfp4_a16", "mxfp8", "mxfp8_a16"]


def tiny_llama(seed=0, tie=True):
    from transformers import AutoModelForCausalLM, LlamaConfig

    torch.manual_seed(seed)
    cfg = LlamaConfig(hidden_size=192, intermediate_size=320, num_hidden_layers=2, num_attention_heads=3,
                      num_key_value_heads=1, vocab_size=300, tie_word_embeddings=tie)
    # from_config keeps RoPE's inv_freq in float32, as a checkpoint load does (.to(bf16) would round it)
    return AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16).eval()


@pytest.mark.parametrize("scheme", WRITABLE)
def test_write_then_read_is_bit_exact(tmp_path, scheme):
    model = tiny_llama()
    qlinear.quantize(model, scheme, progress=False)
    ids = torch.randint(0, 300, (2, 9))
    with torch.no_grad():
        expect = model(ids).logits
    save_compressed_tensors(model, tmp_path)
    qc = json.loads((tmp_path / "config.json").read_text())["quantization_config"]
    assert qc["quant_method"] == "compressed-tensors" and qc["ignore"] == ["lm_head"]
    loaded, read_scheme = load_quantized(tmp_path)
    assert read_scheme.name == scheme
    # gated MLPs fused on reading as quantize fused them (where down_proj takes per-token quantized input)
    assert [type(layer.mlp) for layer in loaded.model.layers] == [type(layer.mlp) for layer in model.model.layers]
    ours = dict(model.named_modules())
    for name, layer in loaded.named_modules():
        if isinstance(layer, QuantizedLinear):
            src = ours[name]
            assert torch.equal(layer.weight.view(torch.uint8), src.weight.view(torch.uint8))
            assert torch.equal(layer.weight_scale, src.weight_scale)
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, expect)


def test_untied_head_and_file_contents(tmp_path):
    model = tiny_llama(tie=False)
    qlinear.quantize(model, "fp8_per_block", progress=False)
    save_compressed_tensors(model, tmp_path)
    t = load_file(str(tmp_path / "model.safetensors"))
    assert t["model.layers.0.mlp.down_proj.weight"].dtype == torch.float8_e4m3fn
    assert t["model.layers.0.mlp.down_proj.weight_scale"].shape == (2, 3)  # ceil(192/128) x ceil(320/128)
    assert t["lm_head.weight"].dtype == torch.bfloat16
    loaded, _ = load_quantized(tmp_path)
    assert torch.equal(loaded.lm_head.weight, model.lm_head.weight)


def test_schemes_without_a_written_form_are_refused_with_the_reason(tmp_path):
    model = tiny_llama()
    qlinear.quantize(model, "nvfp4", progress=False)
    with pytest.raises(NotExpressible, match="calibrated static input_global_scale.*write nvfp4_a16"):
        save_compressed_tensors(model, tmp_path)
    assert not any(tmp_path.iterdir())  # refused before anything is written


def _written(tmp_path, scheme="fp8_per_channel"):
    model = tiny_llama()
    qlinear.quantize(model, scheme, progress=False)
    save_compressed_tensors(model, tmp_path)
    return load_file(str(tmp_path / "model.safetensors"))


def test_missing_scale_names_layer_and_tensor(tmp_path):
    t = _written(tmp_path)
    del t["model.layers.1.self_attn.k_proj.weight_scale"]
    save_file(t, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"layer model.layers.1.self_attn.k_proj: tensor .*k_proj.weight_scale is missing"):
        load_quantized(tmp_path)


def test_wrong_scale_shape_and_nan_scale(tmp_path):
    t = _written(tmp_path)
    t["model.layers.0.mlp.up_proj.weight_scale"] = torch.ones(5, 1)
    save_file(t, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"model.safetensors: tensor model.layers.0.mlp.up_proj.weight_scale has shape \(5, 1\), expected \(320, 1\)"):
        load_quantized(tmp_path)
    t["model.layers.0.mlp.up_proj.weight_scale"] = torch.full((320, 1), float("nan"))
    save_file(t, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match="up_proj.weight_scale has NaN/Inf values"):
        load_quantized(tmp_path)


def test_corrupt_header_and_missing_shard(tmp_path):
    _written(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(CheckpointError, match="unreadable safetensors file"):
        load_quantized(tmp_path)
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "model-00001.safetensors"}}))
    with pytest.raises(CheckpointError, match="shard model-00001.safetensors is listed but missing"):
        load_quantized(tmp_path)


@pytest.mark.parametrize("edit,message", [
    (lambda qc: qc["config_groups"]["group_0"]["weights"].update(num_bits=4), "matches no scheme qlinear reads"),
    (lambda qc: qc["config_groups"]["group_0"].update(format="marlin-24"), "format 'marlin-24' with weights"),
    (lambda qc: qc.update(quant_method="awq"), "quant_method 'awq' is not one qlinear reads"),
    (lambda qc: qc["config_groups"]["group_0"]["weights"].update(symmetric=False),
     r"asymmetric weights \(weight_zero_point\) are not supported"),
])
def test_unknown_quantization_configs_are_named(tmp_path, edit, message):
    _written(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    edit(cfg["quantization_config"])
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=f"config.json: .*{message}"):
        load_quantized(tmp_path)


@pytest.mark.parametrize("scheme", WRITABLE)
def test_compressed_tensors_reads_what_qlinear_writes(tmp_path, scheme):
    """The peer's own reader (transformers + compressed-tensors, decompressing to bf16) recovers our
    weights to within bf16 rounding of the exact dequantized values."""
    pytest.importorskip("compressed_tensors")
    from transformers import AutoModelForCausalLM
    from transformers.utils.quantization_config import CompressedTensorsConfig

    from qlinear.formats import dequantize

    model = tiny_llama()
    qlinear.quantize(model, scheme, progress=False)
    save_compressed_tensors(model, tmp_path)
    peer = AutoModelForCausalLM.from_pretrained(
        str(tmp_path), quantization_config=CompressedTensorsConfig(run_compressed=False), dtype=torch.bfloat16
    )
    peer_modules = dict(peer.named_modules())
    checked = 0
    for name, layer in model.named_modules():
        if isinstance(layer, QuantizedLinear):
            exact = dequantize(layer.quantized_weight(), torch.float64)
            theirs = peer_modules[name].weight.double()
            assert torch.allclose(theirs, exact, rtol=2**-7, atol=1e-9), name  # bf16: 8 significant bits
            checked += 1
    assert checked == 14


@pytest.mark.parametrize("scale_dtype", [torch.float32, torch.bfloat16, torch.float8_e8m0fnu])
def test_deepseek_fp8_block_checkpoint(tmp_path, scale_dtype):
    """quant_method "fp8" with weight_block_size [128, 128]: weight_scale_inv is the dequant multiplier."""
    model = tiny_llama()
    qlinear.quantize(model, "fp8_per_block", progress=False)
    save_compressed_tensors(model, tmp_path)
    t = load_file(str(tmp_path / "model.safetensors"))
    for key in [k for k in t if k.endswith(".weight_scale")]:
        t[key.replace(".weight_scale", ".weight_scale_inv")] = t.pop(key).to(scale_dtype)
    save_file(t, str(tmp_path / "model.safetensors"))
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["quantization_config"] = {"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic",
                                  "weight_block_size": [128, 128], "modules_to_not_convert": ["lm_head"]}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    loaded, scheme = load_quantized(tmp_path)
    assert scheme.name == "fp8_per_block"
    layer = loaded.model.layers[1].self_attn.o_proj
    stored = t["model.layers.1.self_attn.o_proj.weight_scale_inv"].float()
    assert torch.equal(layer.weight_scale, stored)  # read as stored, as a multiplier
    if scale_dtype == torch.float32:
        ids = torch.randint(0, 300, (1, 7))
        with torch.no_grad():
            assert torch.equal(loaded(ids).logits, model(ids).logits)


def test_fp8_config_with_block_and_static_activations_is_refused(tmp_path):
    _written(tmp_path, "fp8_per_tensor")
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["quantization_config"] = {"quant_method": "fp8", "activation_scheme": "static", "weight_block_size": [128, 128]}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="static activations with weight_block_size are not supported"):
        load_quantized(tmp_path)


def test_explain_reads_the_scheme_from_a_checkpoint(tmp_path, capsys):
    from qlinear.cli import main

    _written(tmp_path, "fp8_per_block")
    assert main(["explain", "--model", str(tmp_path), "--platform", "sm_90", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["scheme"] == "fp8_per_block"
    layers = {layer["name"]: layer for layer in out["layers"]}
    assert layers["lm_head"]["action"] == "ignore"
    down = layers["model.layers.0.mlp.down_proj"]  # K=320: 3 blocks, which cuBLASLt blockwise gets wrong
    assert [r["kernel"] for r in down["dispatch"]] == ["triton_fp8_block"] * 3 + ["gluon_fp8_block"] * 2
    reasons = {r["kernel"]: r["reason"] for r in down["dispatch"][1]["rejected"]}
    assert "#166752" in reasons["cublas_fp8_block"] and "prefill (M > 64)" in reasons["gluon_fp8_block"]


def test_explain_for_another_platform_does_not_warn_about_the_cpu_it_loaded_on(tmp_path, capsys, caplog):
    from qlinear.cli import main
    from qlinear.kernels import registry

    _written(tmp_path, "nvfp4_a16")  # on this CPU: emulation, a fallback that warns when layers run here
    registry._warned.clear()
    caplog.clear()  # quantizing above warned already
    with caplog.at_level("WARNING", logger="qlinear"):
        assert main(["explain", "--model", str(tmp_path), "--platform", "sm_90", "--json"]) == 0
    assert not [r for r in caplog.records if "falls back" in r.getMessage()]
    layers = {layer["name"]: layer for layer in json.loads(capsys.readouterr().out)["layers"]}
    assert {r["kernel"] for r in layers["model.layers.0.mlp.down_proj"]["dispatch"]} >= {"triton_w4a16"}
    with caplog.at_level("WARNING", logger="qlinear"):  # the warning itself still works where layers run
        load_quantized(tmp_path)
    assert [r for r in caplog.records if "falls back" in r.getMessage()]


def test_sharded_write_has_an_index_and_reads_back_bit_exact(tmp_path):
    model = tiny_llama(tie=False)
    qlinear.quantize(model, "nvfp4_a16", progress=False)
    save_compressed_tensors(model, tmp_path, max_shard_bytes=100_000)
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    shards = sorted(p.name for p in tmp_path.glob("model-*.safetensors"))
    assert len(shards) > 3 and sorted(set(index["weight_map"].values())) == shards
    assert not (tmp_path / "model.safetensors").exists()
    total = sum(t.numel() * t.element_size() for s in shards for t in load_file(str(tmp_path / s)).values())
    assert index["metadata"]["total_size"] == total
    loaded, _ = load_quantized(tmp_path)
    ids = torch.randint(0, 300, (1, 5))
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, model(ids).logits)


@pytest.mark.parametrize("scheme,tensor,value,message", [
    ("fp8_per_channel", "weight_scale", torch.ones(320, 1, dtype=torch.int32), "has dtype torch.int32"),
    ("mxfp8", "weight_scale", torch.full((320, 6), 255, dtype=torch.uint8), r"has NaN/Inf values \(1920 of 1920\)"),
    ("nvfp4_a16", "weight_global_scale", torch.tensor([0.0]), "is 0.0, expected a finite positive NVFP4 global"),
    ("nvfp4_a16", "weight_global_scale", torch.ones(2), r"has shape \(2,\) and dtype torch.float32, expected one float number"),
    ("nvfp4_a16", "weight_packed", torch.zeros(320, 192, dtype=torch.uint8), r"has shape \(320, 192\), expected \(320, 96\)"),
])
def test_bad_tensors_name_file_and_tensor(tmp_path, scheme, tensor, value, message):
    t = _written(tmp_path, scheme)
    name = f"model.layers.0.mlp.up_proj.{tensor}"
    assert name in t
    t[name] = value
    save_file(t, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match=f"model.safetensors: tensor {name} {message}"):
        load_quantized(tmp_path)


def test_truncated_file_is_named(tmp_path):
    _written(tmp_path)
    data = (tmp_path / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="model.safetensors: unreadable safetensors file"):
        load_quantized(tmp_path)


def test_in_features_not_divisible_by_the_group_is_named(tmp_path):
    from qlinear.checkpoints.layout import OnDisk, read_linear
    from qlinear.schemes import SCHEMES

    with pytest.raises(CheckpointError, match=r"layer blk.up \[64x48\]: in_features 48 is not divisible by 32, the group size of mxfp4_a16"):
        read_linear(lambda name: (torch.zeros(1), tmp_path / "x"), "blk.up", SCHEMES["mxfp4_a16"], OnDisk(), 64, 48)


def write_static_fp8_checkpoint(folder, input_scale=0.01):
    """A compressed-tensors FP8 checkpoint with static per-tensor input scales (llm-compressor's ``FP8``
    layout: bf16 ``input_scale`` ``[1]`` per Linear); returns the tensors and the quantized layer names."""
    model = tiny_llama()
    qlinear.quantize(model, "fp8_per_tensor", progress=False)
    save_compressed_tensors(model, folder)
    t = load_file(str(folder / "model.safetensors"))
    layers = [k[: -len(".weight_scale")] for k in t if k.endswith(".weight_scale")]
    for layer in layers:
        t[f"{layer}.input_scale"] = torch.tensor([input_scale], dtype=torch.bfloat16)
    save_file(t, str(folder / "model.safetensors"))
    cfg = json.loads((folder / "config.json").read_text())
    cfg["quantization_config"]["config_groups"]["group_0"]["input_activations"]["dynamic"] = False
    (folder / "config.json").write_text(json.dumps(cfg))
    return t, layers


def test_static_fp8_checkpoint_round_trips_and_uses_its_input_scale(tmp_path):
    """fp8_static (AutoFP8 / llm-compressor FP8 / ModelOpt FP8 layout): written with input_scale, read back
    bit-exact; a missing input_scale is named."""
    t, layers = write_static_fp8_checkpoint(tmp_path)
    loaded, scheme = load_quantized(tmp_path)
    assert scheme.name == "fp8_static"
    q = loaded.model.layers[0].self_attn.q_proj
    assert q.input_scale == torch.tensor(0.01, dtype=torch.bfloat16).float()
    x = torch.randn(3, 192)
    expect = (fake_quantize(x, scheme.activation, scale=q.input_scale).double()
              @ dequantize(q.quantized_weight(), torch.float64).t())
    assert torch.allclose(q(x).double(), expect, rtol=1e-5, atol=1e-5)
    again = tmp_path / "again"
    save_compressed_tensors(loaded, again)
    reread, _ = load_quantized(again)
    assert torch.equal(reread.model.layers[0].self_attn.q_proj.input_scale, q.input_scale)
    del t[f"{layers[0]}.input_scale"]
    save_file(t, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match=f"layer {layers[0]}: tensor {layers[0]}.input_scale is missing"):
        load_quantized(tmp_path)


def test_convert_at_load_equals_online_conversion(tmp_path):
    """An NVFP4 checkpoint converted to FP8 blocks while it is read is the same model, bit for bit, as
    online NVFP4 quantization converted the same way."""
    model = tiny_llama()
    qlinear.quantize(model, "nvfp4_a16", progress=False)
    save_compressed_tensors(model, tmp_path)
    loaded, scheme = load_quantized(tmp_path, convert_to="fp8_per_block")
    online = tiny_llama()
    qlinear.quantize(online, "nvfp4_a16", convert_to="fp8_per_block", progress=False)
    assert scheme.name == "fp8_per_block"
    ids = torch.randint(0, 300, (2, 6))
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, online(ids).logits)
    layer = loaded.model.layers[1].mlp.down_proj
    assert layer.scheme.name == "fp8_per_block" and layer.weight.dtype == torch.float8_e4m3fn
    with pytest.raises(ValueError, match="cannot convert nvfp4_a16 to fp8_static"):
        load_quantized(tmp_path, convert_to="fp8_static")


def test_cli_explain_converts_a_checkpoint(tmp_path, capsys):
    from qlinear.cli import main

    _written(tmp_path, "nvfp4_a16")
    assert main(["explain", "--model", str(tmp_path), "--convert-to", "fp8_per_block", "--platform", "sm_90",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["scheme"] == "nvfp4_a16->fp8_per_block" and "block_size=128x128" in out["scheme_spec"]
    up = {layer["name"]: layer for layer in out["layers"]}["model.layers.0.mlp.up_proj"]
    assert {r["kernel"] for r in up["dispatch"]} <= {"triton_fp8_block", "cublas_fp8_block", "gluon_fp8_block"}
