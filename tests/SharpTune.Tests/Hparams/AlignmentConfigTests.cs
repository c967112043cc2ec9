using SharpTune.Data;
using SharpTune.Hparams;
using SharpTune.Templates;
using SharpTune.Tests.Data;
using SharpTune.Tests.Workflows;
using SharpTune.Workflows;

namespace SharpTune.Tests.Hparams;

/// <summary>
/// The keys of LLaMA-Factory's alignment stages (its RLHFArguments, hparams/finetuning_args.py): defaults, values,
/// the checks its finetuning_args and parser make, and the refusal of a stage that has no workflow yet.
/// </summary>
public sealed class AlignmentConfigTests
{
    private const string Model = "model_name_or_path: Qwen/Qwen2.5-0.5B\n";

    private static SftConfig Parse(string yaml) => SftConfig.Parse(Model + yaml, [], Path.GetTempPath());

    private static string Error(string yaml) => Assert.Throws<ConfigException>(() => Parse(yaml)).Message;

    [Fact]
    public void DefaultsAreLlamaFactorys()
    {
        var f = Parse("stage: dpo\n").Finetuning;
        Assert.Equal((0.1, 0.0, 0.0, "sigmoid", 0.0, 0.5), (f.PrefBeta, f.PrefFtx, f.PrefBcoWeight, f.PrefLoss, f.DpoLabelSmoothing, f.SimpoGamma));
        Assert.Equal((1.0, 1.0), (f.KtoChosenWeight, f.KtoRejectedWeight));
        Assert.Equal((1, 4, false, 6.0, false), (f.PpoBufferSize, f.PpoEpochs, f.PpoScoreNorm, f.PpoTarget, f.PpoWhitenRewards));
        Assert.Equal(("lora", null, null, null, null), (f.RewardModelType, f.RefModel, f.RewardModel, f.RefModelQuantizationBit, f.RewardModelQuantizationBit));
        Assert.Empty(f.RefModelAdapters);
        Assert.Empty(f.RewardModelAdapters);
        Assert.True(f.UseRefModel);
    }

    [Fact]
    public void EveryKeyIsRead()
    {
        var f = Parse("""
            stage: dpo
            pref_beta: 0.25
            pref_ftx: 0.5
            pref_bco_weight: 1e-7
            pref_loss: ipo
            simpo_gamma: 1.5
            kto_chosen_weight: 2.0
            kto_rejected_weight: 1.5
            ref_model: org/ref
            ref_model_adapters: a1,a2
            ref_model_quantization_bit: 4
            reward_model: org/rm
            reward_model_adapters: r1
            reward_model_quantization_bit: 8
            reward_model_type: full
            ppo_buffer_size: 2
            ppo_epochs: 3
            ppo_score_norm: true
            ppo_target: 5.5
            ppo_whiten_rewards: true
            """).Finetuning;
        // pref_bco_weight at or below LLaMA-Factory's 1e-6 threshold adds no BCO term; above it the config refuses it.
        Assert.Equal((0.25, 0.5, 1e-7, "ipo", 1.5), (f.PrefBeta, f.PrefFtx, f.PrefBcoWeight, f.PrefLoss, f.SimpoGamma));
        Assert.Equal((2.0, 1.5), (f.KtoChosenWeight, f.KtoRejectedWeight));
        Assert.Equal(("org/ref", 4, "org/rm", 8, "full"), (f.RefModel, f.RefModelQuantizationBit, f.RewardModel, f.RewardModelQuantizationBit, f.RewardModelType));
        Assert.Equal(["a1", "a2"], f.RefModelAdapters);
        Assert.Equal(["r1"], f.RewardModelAdapters);
        Assert.Equal((2, 3, true, 5.5, true), (f.PpoBufferSize, f.PpoEpochs, f.PpoScoreNorm, f.PpoTarget, f.PpoWhitenRewards));
    }

    [Theory]
    [InlineData("sigmoid", true)]
    [InlineData("hinge", true)]
    [InlineData("ipo", true)]
    [InlineData("orpo", false)]
    [InlineData("simpo", false)]
    public void OrpoAndSimpoNeedNoReferenceModel(string loss, bool useRefModel) =>
        Assert.Equal(useRefModel, Parse($"stage: dpo\npref_loss: {loss}\n").Finetuning.UseRefModel);

    [Theory]
    [InlineData("stage: dpo\npref_loss: kto_pair\n", "pref_loss 'kto_pair' is not supported yet (supported: sigmoid, hinge, ipo, orpo, simpo) (line 3 of config)")]
    [InlineData("stage: dpo\npref_loss: dpo\n", "pref_loss: expected one of sigmoid, hinge, ipo, orpo, simpo, kto_pair, got 'dpo' (line 3 of config)")]
    [InlineData("stage: dpo\npref_loss: hinge\ndpo_label_smoothing: 0.1\n", "dpo_label_smoothing: is only valid for pref_loss: sigmoid, not hinge (line 4 of config)")]
    [InlineData("stage: dpo\ndpo_label_smoothing: 0.6\n", "dpo_label_smoothing: must be at least 0 and at most 0.5, got 0.6 (line 3 of config)")]
    [InlineData("stage: dpo\npref_beta: 0\n", "pref_beta: must be greater than 0, got 0 (line 3 of config)")]
    [InlineData("stage: ppo\ndo_train: true\n", "reward_model: is necessary for stage ppo: the adapter folder (reward_model_type lora), model folder (full) or API URL (api) that scores the answers")]
    [InlineData("stage: ppo\ndo_train: true\nreward_model: rm\nfinetuning_type: full\n",
        "reward_model_type: cannot be lora for finetuning_type full (a LoRA reward model is an adapter on the LoRA-trained model); use reward_model_type: full")]
    [InlineData("stage: ppo\nreward_model: rm\n", "do_train: stage ppo only trains (LLaMA-Factory's PPO does not evaluate; evaluate the model with stage sft)")]
    [InlineData("stage: kto\nref_model_quantization_bit: 3\n", "ref_model_quantization_bit: bitsandbytes quantizes to 4 or 8 bits, got 3 (line 3 of config)")]
    [InlineData("stage: ppo\nreward_model_type: oft\n", "reward_model_type: expected one of lora, full, api, got 'oft' (line 3 of config)")]
    [InlineData("stage: ppo\nppo_epochs: 0\n", "ppo_epochs: must be at least 1, got 0 (line 3 of config)")]
    [InlineData("stage: dpo\npacking: true\n", "packing: applies to stages sft and pt only, not stage dpo (LLaMA-Factory's processors of the alignment stages do not pack) (line 3 of config)")]
    [InlineData("stage: rm\ntrain_on_prompt: true\n", "train_on_prompt: applies to stage sft only, not stage rm (line 3 of config)")]
    [InlineData("stage: kto\nmask_history: true\n", "mask_history: applies to stage sft only, not stage kto (line 3 of config)")]
    [InlineData("stage: dpo\nld_alpha: 0.5\n", "ld_alpha is not supported: LD-DPO (the weighting of verbose answer tokens) is not available (line 3 of config)")]
    public void LlamaFactorysRulesAreChecked(string yaml, string message) => Assert.Equal(message, Error(yaml));

    [Fact]
    public void LabelSmoothingIsOnlyCheckedForStageDpoAsLlamaFactoryDoes()
    {
        Assert.Equal(0.1, Parse("stage: dpo\ndpo_label_smoothing: 0.1\n").Finetuning.DpoLabelSmoothing);
        Assert.Equal(["dpo_label_smoothing is ignored: it only applies to stage dpo, not stage kto"],
            Parse("stage: kto\npref_loss: hinge\ndpo_label_smoothing: 0.1\n").Notes.Where(n => n.StartsWith("dpo_label", StringComparison.Ordinal)));
    }

    [Fact]
    public void KeysOfAnotherStageAddANote()
    {
        var c = Parse("stage: dpo\nreward_model: rm\nkto_chosen_weight: 2\nref_model: null\npref_beta: 0.2\n");
        Assert.Equal(
        [
            "reward_model is ignored: it only applies to stage ppo, not stage dpo",
            "kto_chosen_weight is ignored: it only applies to stage kto, not stage dpo",
        ], c.Notes);
    }

    [Fact]
    public void ReferenceAndRewardModelFoldersResolveAgainstTheWorkingDirectory()
    {
        string root = Directory.CreateTempSubdirectory("sharptune-align-").FullName;
        try
        {
            foreach (string folder in new[] { "ref", "rm", "ref-adapter" }) Directory.CreateDirectory(Path.Combine(root, folder));
            var f = SftConfig.Parse(Model + "stage: ppo\ndo_train: true\ndataset: x\noutput_dir: out\nref_model: ref\nref_model_adapters: ref-adapter\nreward_model: rm\nreward_model_adapters: org/x\n",
                [], root).Finetuning;
            Assert.Equal(Path.Combine(root, "ref"), f.RefModel);
            Assert.Equal([Path.Combine(root, "ref-adapter")], f.RefModelAdapters);
            Assert.Equal(Path.Combine(root, "rm"), f.RewardModel);
            Assert.Equal(["org/x"], f.RewardModelAdapters); // no such folder: a Hub id, kept as written

            var api = SftConfig.Parse(Model + "stage: ppo\ndo_train: true\ndataset: x\noutput_dir: out\nreward_model_type: api\nreward_model: rm\n", [], root).Finetuning;
            Assert.Equal("rm", api.RewardModel); // an API URL is never a folder
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public void TrainingRefusesAMissingReferenceModelOnlyForAStageThatLoadsIt()
    {
        string model = TestPaths.Fixtures("qwen2-small-vocab");
        string dataDir = TestPaths.Fixtures("llamafactory");
        string[] overrides = [$"model_name_or_path={model}", $"dataset_dir={dataDir}", "output_dir=out", "ref_model=no/such/ref-model"];
        string config = Path.Combine(Directory.CreateTempSubdirectory("sharptune-align-").FullName, "c.yaml");
        try
        {
            File.WriteAllText(config, "stage: dpo\ndo_train: true\ndataset: dpo_en_demo\n");
            var e = Assert.Throws<ConfigException>(() => SftConfig.Load(config, overrides, ConfigUse.Train));
            Assert.StartsWith("ref_model: 'no/such/ref-model' is not a local folder nor a model in the Hugging Face cache", e.Message);

            File.WriteAllText(config, "stage: sft\ndo_train: true\ndataset: identity\n");
            Assert.Equal("no/such/ref-model", SftConfig.Load(config, overrides, ConfigUse.Train).Finetuning.RefModel);
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(config)!, recursive: true);
        }
    }

    /// <summary>
    /// SharpTune's own examples of the alignment stages (examples/train_lora), loaded as `sharptune train` loads them
    /// with the model, data and reward-model folders pointed at fixtures, and their datasets read for their stage
    /// (the repository's data/dataset_info.json registers the demo sets as LLaMA-Factory does; the fixtures hold them).
    /// </summary>
    [Theory]
    [InlineData("qwen2.5_lora_dpo.yaml", "dpo", "sigmoid")]
    [InlineData("qwen2.5_lora_orpo.yaml", "dpo", "orpo")]
    [InlineData("qwen2.5_lora_simpo.yaml", "dpo", "simpo")]
    [InlineData("qwen2.5_lora_kto.yaml", "kto", "sigmoid")]
    [InlineData("qwen2.5_lora_reward.yaml", "rm", "sigmoid")]
    [InlineData("qwen2.5_lora_ppo.yaml", "ppo", "sigmoid")]
    public void TheAlignmentExamplesLoadAndReadTheirDatasets(string example, string stage, string prefLoss)
    {
        string path = Path.Combine(TestPaths.RepoRoot, "examples", "train_lora", example);
        string bundled = Path.Combine(TestPaths.RepoRoot, "data");
        List<string> overrides = [$"model_name_or_path={TestPaths.Fixtures("qwen2-small-vocab")}", $"dataset_dir={bundled}", "max_samples=8"];
        if (stage == "ppo") overrides.Add($"reward_model={TestPaths.Fixtures("lora")}");
        var cfg = SftConfig.Load(path, overrides, ConfigUse.Train);
        Assert.Equal((stage, prefLoss), (cfg.Finetuning.Stage, cfg.Finetuning.PrefLoss));
        Assert.Empty(cfg.Notes);
        // The repository's registry gives each dataset the kind its stage reads.
        var registry = DatasetRegistry.Load(bundled);
        foreach (string name in cfg.Data.Dataset) registry.Get(name).RequireUsableBy(stage);

        // The demo sets are not bundled (data/README.md); the fixtures hold the same files under the same registry entries.
        cfg.Data.DatasetDir = TestPaths.Fixtures("llamafactory");
        var qwen = SftPreprocessFixture.Get("qwen.json");
        var template = ChatTemplates.ForModel(cfg.Data.Template, qwen.TokenizerDir);
        int examples = stage switch
        {
            "rm" or "dpo" => PreferenceDatasets.LoadPairwise(cfg.Data, qwen.Tokenizer, template, stage, cfg.Training.Seed).Train.Count,
            "kto" => PreferenceDatasets.LoadFeedback(cfg.Data, qwen.Tokenizer, template, cfg.Training.Seed).Train.Count,
            _ => PreferenceDatasets.LoadPrompts(cfg.Data, qwen.Tokenizer, template, cfg.Training.Seed).Train.Count,
        };
        Assert.Equal(8, examples);
    }

    /// <summary>Every stage LLaMA-Factory's run_exp dispatches has a workflow: none is refused as planned any more.</summary>
    [Fact]
    public void EveryLlamaFactoryStageHasAWorkflow() =>
        Assert.Equal(["dpo", "kto", "ppo", "pt", "rm", "sft"], TrainingWorkflow.Stages.Keys.Order(StringComparer.Ordinal));
}
