import pytest

from simtune.apps.images.run.backbones import build_backbone
from simtune.apps.images.run.heads import HEADS
from simtune.apps.images.run.settings import TrainSettings


def test_default_fine_tunes_lite0s_last_convolution_at_its_own_learning_rate():
    settings = TrainSettings()
    assert settings.backbones == ["lite0"] and settings.head == "last-conv"
    assert settings.learning_rate == HEADS["last-conv"][1]
    assert TrainSettings(head="linear").learning_rate == HEADS["linear"][1] != settings.learning_rate
    assert TrainSettings(head="skip", learning_rate=0.5).learning_rate == 0.5


@pytest.mark.parametrize("backbones", [["lite0", "lite1"], ["torchvision:resnet152"]])
def test_last_conv_needs_exactly_one_efficientnet_lite(backbones):
    with pytest.raises(ValueError, match="exactly one EfficientNet-Lite backbone"):
        TrainSettings(backbones=backbones, head="last-conv")
    assert TrainSettings(backbones=backbones, head="skip").head == "skip"


def test_only_efficientnet_lite_gives_feature_maps():
    assert build_backbone("lite1", feature_maps=True).output == "blocks"
    with pytest.raises(ValueError, match="only EfficientNet-Lite backbones"):
        build_backbone("torchvision:resnet18", feature_maps=True)


@pytest.mark.parametrize("tuned_blocks", [0, 2])
def test_last_conv_tunes_the_pretrained_layers_ten_times_slower(tmp_path, tuned_blocks):
    from simtune.apps.images.run.trainable import ImagesTrainable

    settings = TrainSettings(tuned_blocks=tuned_blocks)
    trainable = ImagesTrainable(settings, num_train_classes=4, steps_per_epoch=3, cache_dir=tmp_path)
    head = trainable.model.head
    assert head.tuned_blocks == tuned_blocks == trainable.model.encoders["lite0"].tuned_blocks
    optimizer = trainable.configure_optimizers()["optimizer"]
    pretrained = {id(p) for p in [*head.conv.parameters(), *head.blocks.parameters()]}
    by_rate = {group["max_lr"]: {id(p) for p in group["params"]} for group in optimizer.param_groups}
    assert by_rate[1e-3] == pretrained and len(pretrained) > 2 * tuned_blocks
    assert id(head.residual.fc.weight) in by_rate[1e-2]


def test_tuned_blocks_belong_to_the_last_conv_head_and_the_variant_bounds_them():
    with pytest.raises(ValueError, match="tunes backbone blocks inside the 'last-conv' head, not 'skip'"):
        TrainSettings(head="skip", tuned_blocks=1)
    with pytest.raises(ValueError, match="tuned_blocks=9"):
        TrainSettings(tuned_blocks=9)


def test_settings_saved_before_blocks_could_be_tuned_load_as_untuned(tmp_path):
    import json
    from dataclasses import asdict

    from simtune.apps.images.data.run_folder import Run
    from simtune.apps.images.run.settings import load_settings

    saved = asdict(TrainSettings(tuned_blocks=1))
    del saved["tuned_blocks"]
    Run(tmp_path).settings_file.write_text(json.dumps(saved))
    assert load_settings(tmp_path).tuned_blocks == 0


def test_patience_must_be_positive_and_mirror_adds_the_mirror_view():
    with pytest.raises(ValueError, match="patience must be >= 1"):
        TrainSettings(patience=0)
    assert TrainSettings().views == ("original",) and TrainSettings(mirror=True).views == ("original", "mirror")


@pytest.mark.parametrize("command", ["train", "demo"])
def test_the_commands_defaults_are_the_settings_defaults(command):
    """The CLI spells its defaults out (so --help shows them without importing torch); they must not drift."""
    from dataclasses import MISSING, fields

    import typer.main

    from simtune.apps.images.cli import app

    params = {p.name: p.default for p in typer.main.get_command(app).commands[command].params}
    defaults = {f.name: f.default if f.default is not MISSING else f.default_factory() for f in fields(TrainSettings)}
    shared = {name: params[name] for name in defaults if name in params}
    assert len(shared) >= (12 if command == "train" else 3)
    assert shared == {name: defaults[name] for name in shared}
    assert params["backbone"] == defaults["backbones"]


def test_an_epoch_draws_each_image_once_but_at_least_the_minimum_batches():
    from simtune.apps.images.run.train import training_batches

    groups = [label for label in range(4) for _ in range(6)]  # 24 images, batches of 2 x 2: 6 per epoch
    assert (
        len(training_batches(groups, TrainSettings(classes_per_batch=2, samples_per_class=2, min_batches_per_epoch=0)))
        == 6
    )
    assert (
        len(training_batches(groups, TrainSettings(classes_per_batch=2, samples_per_class=2, min_batches_per_epoch=4)))
        == 6
    )
    small = training_batches(groups, TrainSettings(classes_per_batch=2, samples_per_class=2, min_batches_per_epoch=15))
    assert len(small) == len(list(small)) == 15
    with pytest.raises(ValueError, match="min_batches_per_epoch must be >= 0"):
        TrainSettings(min_batches_per_epoch=-1)


@pytest.mark.parametrize("edit", ["key added", "bad value", "cut short"])
def test_hand_edited_or_damaged_settings_are_one_line_naming_the_file(tmp_path, edit):
    import json
    from dataclasses import asdict

    from simtune.apps.images.data.run_folder import Run
    from simtune.apps.images.run.settings import load_settings

    saved = asdict(TrainSettings())
    if edit == "key added":
        saved["colour"] = "red"
    elif edit == "bad value":
        saved["head"] = "no-such-head"
    text = json.dumps(saved)
    Run(tmp_path).settings_file.write_text(text[:40] if edit == "cut short" else text)
    with pytest.raises(ValueError) as refused:
        load_settings(tmp_path)
    message = str(refused.value)
    assert message.startswith(f"{Run(tmp_path).settings_file} is damaged or was edited by hand (")
    assert "\n" not in message
