"""Presets and config files: shipped presets, validation, layering (CLI > --config > preset > defaults)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cardiobench import config
from cardiobench.config import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_shipped_presets_all_load():
    assert {"quick", "seed-report", "gpu", "tiny"} <= set(config.preset_names())
    for name in config.preset_names():
        cfg = config.load_preset(name)
        assert set(cfg) == set(config.SCHEMA)
        assert all(set(cfg[sec]) == set(keys) for sec, keys in config.SCHEMA.items())
        assert config.preset_description(name)


def test_presets_are_package_data_and_the_repo_folder_only_points_there():
    assert config.presets_dir() == REPO / "cardiobench" / "configs"
    assert not list((REPO / "configs").glob("*.toml")), "canonical presets live in cardiobench/configs/"
    assert "cardiobench/configs" in (REPO / "configs" / "README.md").read_text()
    pyproject = (REPO / "pyproject.toml").read_text()
    assert '"configs/*.toml"' in pyproject


def test_seed_report_is_the_seed_setup():
    cfg = config.load_preset("seed-report")
    assert cfg["data"]["resolution"] == 64
    assert cfg["diffusion"]["num_timesteps"] == 1000 and cfg["diffusion"]["beta_schedule"] == "cosine"
    assert cfg["train"]["epochs"] == 50 and cfg["train"]["steps"] is None
    assert cfg["train"]["batch_size"] == 16 and cfg["train"]["lr"] == 1e-4
    assert cfg["train"]["loss"] == "smooth_l1" and cfg["train"]["precision"] == "fp32"
    assert cfg["model"]["channel_mults"] == [1, 2, 4]


def test_quick_is_a_cpu_preset_and_tiny_is_tiny():
    quick, tiny = config.load_preset("quick"), config.load_preset("tiny")
    assert quick["data"]["resolution"] == 32 and quick["train"]["steps"] <= 5000
    assert tiny["train"]["steps"] <= 10 and tiny["data"]["resolution"] <= 16 and tiny["run"]["device"] == "cpu"
    assert config.load_preset("gpu")["run"]["device"] == "cuda"


def test_layers_cli_over_file_over_preset(tmp_path):
    user = tmp_path / "mine.toml"
    user.write_text('[train]\nlr = 5e-4\nbatch_size = 8\n[model.options]\nkernel_size = 5\n')
    cfg = config.resolve_config("quick", user, overrides={"train.batch_size": 4, "sample.sampler": None},
                                sets=["diffusion.beta_schedule=linear", "model.options.dropout=0.1"])
    assert cfg["train"]["lr"] == 5e-4  # file over preset
    assert cfg["train"]["batch_size"] == 4  # command line over file
    assert cfg["sample"]["sampler"] == "ddpm"  # None = option not given
    assert cfg["diffusion"]["beta_schedule"] == "linear"  # bare word parsed as a string
    assert cfg["model"]["options"] == {"kernel_size": 5, "dropout": 0.1}  # options tables merge
    assert cfg["data"]["resolution"] == 32  # untouched preset value


def test_a_higher_layer_replaces_steps_with_epochs_and_back():
    assert config.resolve_config("seed-report", overrides={"train.steps": 10})["train"] == {
        **config.load_preset("seed-report")["train"], "steps": 10, "epochs": None}
    cfg = config.resolve_config("quick", sets=["train.epochs=2"])
    assert cfg["train"]["epochs"] == 2 and cfg["train"]["steps"] is None


def test_preset_by_path_and_no_preset(tmp_path):
    own = tmp_path / "own.toml"
    own.write_text("[train]\nsteps = 7\n")
    assert config.load_preset(own)["train"]["steps"] == 7
    assert config.resolve_config(None, own)["model"]["backbone"] == "unet"  # defaults underneath
    with pytest.raises(ConfigError, match="neither train.steps nor train.epochs"):
        config.resolve_config(None)


def write(tmp_path, text) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text, message",
    [
        ("[train]\nbach_size = 3\n", "unknown config key 'train.bach_size' in {p} - did you mean 'train.batch_size'?"),
        ("[train]\nsampler = 'ddim'\n", "unknown config key 'train.sampler' in {p} - did you mean 'sample.sampler'?"),
        ("[trian]\nsteps = 3\n", "unknown config section [trian] in {p} - did you mean 'train'?"),
        ("[train]\nlr = '1e-4'\n", "train.lr in {p} must be a number, got str '1e-4'"),
        ("[train]\nsteps = 2.5\n", "train.steps in {p} must be an integer, got float 2.5"),
        ("[train]\nsteps = true\n", "train.steps in {p} must be an integer, got bool True"),
        ("[model]\nchannel_mults = [1, 'x']\n", "model.channel_mults in {p} must be a list of integers, got list"),
        ("[train]\nbatch_size = 0\n", "train.batch_size in {p} must be >= 1, got 0"),
        ("[train]\nsteps = 3\nepochs = 2\n", "train.steps and train.epochs are both set in {p} - set only one of them"),
        ("train = 3\n", "[train] in {p} must be a table of keys, got int"),
        ("[train\n", "{p} is not valid TOML"),
    ],
)
def test_one_line_errors(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        config.resolve_config("quick", path)
    msg = str(exc.value)
    assert "\n" not in msg and message.format(p=path) in msg
    assert exc.value.exit_code == 2


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"preset": "quik"}, "unknown preset 'quik' - did you mean 'quick'?"),
        ({"preset": "nope/x.toml"}, "config file nope/x.toml does not exist"),
        ({"overrides": {"lr": 1.0}}, "config key 'lr' needs its section, e.g. train.lr - did you mean 'train.lr'?"),
        ({"overrides": {"train.lr": "fast"}}, "train.lr on the command line must be a number, got str 'fast'"),
        ({"sets": ["train.lr"]}, "--set 'train.lr' is not KEY=VALUE"),
        ({"sets": ["train.lr=x"]}, "train.lr in --set must be a number, got str 'x'"),
    ],
)
def test_preset_and_override_errors(kwargs, message):
    with pytest.raises(ConfigError) as exc:
        config.resolve_config(**kwargs)
    assert message in str(exc.value)


def test_parse_set():
    assert config.parse_set("train.lr=3e-4") == ("train.lr", 3e-4)
    assert config.parse_set("model.channel_mults=[1,2]") == ("model.channel_mults", [1, 2])
    assert config.parse_set("run.device=cuda:0") == ("run.device", "cuda:0")
    assert config.parse_set("bench.compile = true") == ("bench.compile", True)


def test_ints_are_accepted_for_floats_and_results_are_copies():
    cfg = config.resolve_config("quick", overrides={"train.lr": 1})
    assert cfg["train"]["lr"] == 1.0 and isinstance(cfg["train"]["lr"], float)
    cfg["model"]["channel_mults"].append(99)
    assert config.load_preset("seed-report")["model"]["channel_mults"] == [1, 2, 4]
    assert config.get(cfg, "data.resolution") == 32


def test_option_helpers_build_typer_options():
    from cardiobench.cli import options

    assert options.preset_option().default == "quick"
    assert options.config_option().default is None and options.set_option().default is None


def test_every_key_and_preset_is_documented():
    doc = (REPO / "docs" / "leaderboard.md").read_text()
    missing = [k for k in config.all_keys() if not k.startswith("preset.") and f"| `{k}` |" not in doc]
    assert not missing, f"docs/leaderboard.md does not document: {missing}"
    assert all(f"| `{name}` |" in doc for name in config.preset_names())


def test_docs_preset_table_is_generated_from_the_code():
    doc = (REPO / "docs" / "leaderboard.md").read_text()
    assert config.markdown_table() in doc, "regenerate the table in docs/leaderboard.md with config.markdown_table()"


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_numbers_are_refused_in_keys_and_option_tables(value):
    with pytest.raises(ConfigError, match=f"conditioning.guidance_scale in --set must be a finite number, got {value}"):
        config.resolve_config("quick", sets=[f"conditioning.guidance_scale={value}"])
    with pytest.raises(ConfigError, match="conditioning.guidance_scale on the command line must be a finite number"):
        config.resolve_config("quick", overrides={"conditioning.guidance_scale": float(value)})
    with pytest.raises(ConfigError, match="sample.options in --set must be finite numbers only"):
        config.resolve_config("quick", sets=[f"sample.options.eta={value}"])


def test_seeds_and_resolution_have_upper_bounds():
    top = config.MAX_SEED
    assert config.resolve_config("quick", overrides={"train.seed": top})["train"]["seed"] == top
    for key in ("data.seed", "train.seed", "sample.seed"):
        with pytest.raises(ConfigError, match=f"{key} on the command line must be <= {top}, got {top + 1}"):
            config.resolve_config("quick", overrides={key: top + 1})
    with pytest.raises(ConfigError, match="data.resolution in --set must be <= 512, got 100000"):
        config.resolve_config("quick", sets=["data.resolution=100000"])
    assert config.resolve_config("quick", sets=["data.resolution=512"])["data"]["resolution"] == 512


def test_check_option_names_the_flag():
    assert config.check_option("--seed", "train.seed", 7) == 7
    assert config.check_option("--eta", "sample.eta", None) is None
    with pytest.raises(ConfigError, match=r"^--seed must be <= 4294967295, got 99999999999999999999999$"):
        config.check_option("--seed", "train.seed", 99999999999999999999999)
    with pytest.raises(ConfigError, match=r"^--grad-clip must be a finite number, got nan$"):
        config.check_option("--grad-clip", "train.grad_clip", float("nan"))


def test_a_config_file_that_is_not_utf8_is_one_line_naming_it(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('[preset]\ndescription = "caf\xe9"\n'.encode("latin-1"))
    with pytest.raises(ConfigError) as exc:
        config.resolve_config("quick", path)
    msg = str(exc.value)
    assert f"config file {path} is not UTF-8 text (byte 0xe9 at offset" in msg and "\n" not in msg


def test_a_data_root_alone_selects_its_data_set_over_the_preset_s(tmp_path):
    root = str(tmp_path)
    assert config.resolve_config("tiny")["data"]["dataset"] == "phantom"
    assert config.resolve_config("tiny", overrides={"data.data_root": root})["data"]["dataset"] == "acdc"
    assert config.resolve_config("tiny", sets=[f"data.data_root={root!r}"])["data"]["dataset"] == "acdc"
    def toml(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    user = toml("user.toml", f"[data]\ndata_root = {root!r}\n")
    assert config.resolve_config("tiny", user)["data"]["dataset"] == "acdc"
    # a data set the user names stands, wherever it is named (it is checked against the root later)
    named = toml("named.toml", '[data]\ndataset = "phantom"\n')
    assert config.resolve_config("tiny", named, overrides={"data.data_root": root})["data"]["dataset"] == "phantom"
    cfg = config.resolve_config("tiny", sets=["data.dataset=phantom"], overrides={"data.data_root": root})
    assert cfg["data"]["dataset"] == "phantom" and cfg["data"]["data_root"] == root
    # a preset that names its data set beside its own root keeps it
    mine = toml("mine.toml", f'[data]\ndataset = "mine"\ndata_root = {root!r}\n[train]\nsteps = 1\n')
    assert config.resolve_config(mine, overrides={"data.data_root": root})["data"]["dataset"] == "mine"


def test_a_presets_data_options_apply_only_to_the_data_set_it_names(tmp_path):
    assert config.resolve_config("tiny")["data"]["options"] == {"train_patients": 2, "test_patients": 1}
    other = config.resolve_config("tiny", overrides={"data.dataset": "acdc"})["data"]
    assert other["dataset"] == "acdc" and other["options"] is None
    root = tmp_path / "acdc"
    root.mkdir()
    by_root = config.resolve_config("tiny", overrides={"data.data_root": str(root)})["data"]
    assert by_root["dataset"] != "phantom" and by_root["options"] is None
    # options from a layer that names no data set go to the chosen one; a file naming its own keeps its own
    mine = config.resolve_config("tiny", overrides={"data.dataset": "acdc"}, sets=["data.options.rotations=2"])
    assert mine["data"]["options"] == {"rotations": 2}
    cfg = tmp_path / "c.toml"
    cfg.write_text('[data]\ndataset = "acdc"\noptions = { skip_bad = true }\n')
    assert config.resolve_config("tiny", config_file=cfg)["data"]["options"] == {"skip_bad": True}
