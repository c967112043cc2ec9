using System.Net.Http.Json;
using System.Text.Json;
using SharpTune.Api;
using SharpTune.Chat;
using SharpTune.Engine;
using SharpTune.Export;
using SharpTune.IO.Safetensors;
using SharpTune.Model;
using SharpTune.Tests.Cli;
using SharpTune.Tests.Model;
using SharpTune.Training.Model;
using SharpTune.Tests.Engine;

namespace SharpTune.Tests.EndToEnd;

/// <summary>
/// `init-model --preset chatglm3-tiny` (ChatGLM3's config keys and tensor names, float32) with a ChatGLM3-style
/// SentencePiece tokenizer, and a stand-in for the remote code the real folders carry, which export must copy.
/// </summary>
public sealed class ChatGlmTinyFixture : TinyModelFixture
{
    public const string RemoteCode = "# modeling_chatglm.py stands for the remote code a ChatGLM folder ships\n";

    public ChatGlmTinyFixture() : base("chatglm3-tiny", TestPaths.Fixtures("tokenizers", "chatglm3-uni"), DType.F32) =>
        File.WriteAllText(Path.Combine(ModelDir, "modeling_chatglm.py"), RemoteCode);
}

/// <summary>Training, QLoRA, generation and export of a generated ChatGLM3-layout model through the real command line.</summary>
[Collection(CliCollection.Name)]
public sealed class ChatGlmTrainingTests(ChatGlmTinyFixture glm) : IClassFixture<ChatGlmTinyFixture>
{
    private string Config(string name, string output, params (string Key, object? Value)[] keys) =>
        glm.WriteConfig(name, output, [("template", "empty"), .. keys]);

    [Fact]
    public void InitModel_writes_chatglm3_config_keys_and_tensor_names()
    {
        using var config = TinyModelFixture.ReadJson(Path.Combine(glm.ModelDir, "config.json"));
        var root = config.RootElement;
        Assert.Equal("chatglm", root.GetProperty("model_type").GetString());
        Assert.Equal(2, root.GetProperty("num_layers").GetInt32());
        Assert.Equal(112, root.GetProperty("ffn_hidden_size").GetInt32());
        Assert.Equal(16, root.GetProperty("kv_channels").GetInt32());
        Assert.Equal(2, root.GetProperty("multi_query_group_num").GetInt32());
        Assert.Equal(65024, root.GetProperty("padded_vocab_size").GetInt32());
        var parsed = ModelConfig.Load(Path.Combine(glm.ModelDir, "config.json"));
        using var checkpoint = SafetensorsCheckpoint.OpenDirectory(glm.ModelDir);
        Assert.Equal(parsed.Description.StateDictOrder(2).Where(n => !n.EndsWith("dense.bias") && !n.EndsWith("4h.bias") && !n.EndsWith("4h_to_h.bias")).Order(StringComparer.Ordinal),
            checkpoint.Names.Order(StringComparer.Ordinal));
        Assert.Equal([128L, 64], checkpoint.Get("transformer.encoder.layers.1.self_attention.query_key_value.weight").Shape);
        Assert.Equal([224L, 64], checkpoint.Get("transformer.encoder.layers.1.mlp.dense_h_to_4h.weight").Shape);
        Assert.Equal([4L], checkpoint.Get("transformer.rotary_pos_emb.inv_freq").Shape);
    }

    /// <summary>Incremental decoding over the KV cache gives the logits of full forwards over the growing sequence.</summary>
    [Fact]
    public void Cached_decoding_equals_full_forwards()
    {
        using var model = DecoderModel.LoadForGeneration(glm.ModelDir);
        int[] ids = [5, 900, 31, 2047, 77, 1200, 8, 64, 300];
        int vocab = model.Config.VocabSize, prompt = 4;
        var cache = model.CreateCache(1, ids.Length);
        var hidden = model.Backend.Allocate(prompt, model.Config.HiddenSize);
        var prefill = model.Backend.Allocate(prompt, vocab);
        model.Forward(ids.AsSpan(0, prompt), Enumerable.Range(0, prompt).ToArray(), Enumerable.Repeat((byte)1, prompt).ToArray(), 1, prompt, cache, hidden);
        model.Logits(hidden, prompt, prefill);
        var logits = model.Backend.ToHost(prefill);
        var (_, full) = model.Evaluate([ids], [ids.Select(_ => 1).ToArray()]);
        for (int i = 0; i < prompt * vocab; i++)
            Assert.True(Math.Abs(full[i] - logits[i]) <= 1e-4, $"prefill logit {i}: {full[i]} vs {logits[i]}");
        var step = model.Backend.Allocate(1, model.Config.HiddenSize);
        var stepOutput = model.Backend.Allocate(1, vocab);
        for (int t = prompt; t < ids.Length; t++)
        {
            model.Forward(ids.AsSpan(t, 1), [t], [1], 1, 1, cache, step);
            model.Logits(step, 1, stepOutput);
            var stepLogits = model.Backend.ToHost(stepOutput);
            for (int v = 0; v < vocab; v++)
                Assert.True(Math.Abs(full[t * vocab + v] - stepLogits[v]) <= 1e-4, $"position {t}, logit {v}: {full[t * vocab + v]} vs {stepLogits[v]}");
        }
    }

    [Fact]
    public void Lora_on_all_linears_trains_the_fused_projections_and_exports_a_merged_folder_with_the_same_logits()
    {
        string output = glm.PathFor("lora");
        TinyModelFixture.Train(Config("lora", output));

        using (var config = TinyModelFixture.ReadJson(Path.Combine(output, "adapter_config.json")))
            Assert.Equal(["dense", "dense_4h_to_h", "dense_h_to_4h", "query_key_value"],
                config.RootElement.GetProperty("target_modules").EnumerateArray().Select(e => e.GetString()!).Order(StringComparer.Ordinal));
        using (var adapter = SafetensorsFile.Open(Path.Combine(output, "adapter_model.safetensors")))
        {
            Assert.Equal(2 * 4 * 2, adapter.Tensors.Count);
            const string prefix = "base_model.model.transformer.encoder.layers.1.";
            Assert.Equal([128L, 4], adapter.Get(prefix + "self_attention.query_key_value.lora_B.weight").Shape);
            Assert.Equal([224L, 4], adapter.Get(prefix + "mlp.dense_h_to_4h.lora_B.weight").Shape);
            Assert.Contains(adapter.ReadFloat32(prefix + "self_attention.query_key_value.lora_B.weight"), v => v != 0);
        }
        var log = TinyModelFixture.TrainerLog(output);
        Assert.True(log[^2].Loss < log[0].Loss, $"the loss should fall over six steps at lr 1e-2: {string.Join(", ", log)}");
        Assert.True(File.Exists(Path.Combine(output, "tokenizer.model")));

        string export = glm.PathFor("lora-merged");
        string exportConfig = glm.PathFor("export.yaml");
        File.WriteAllText(exportConfig, $"""
            model_name_or_path: {JsonSerializer.Serialize(glm.ModelDir)}
            adapter_name_or_path: {JsonSerializer.Serialize(output)}
            template: empty
            finetuning_type: lora
            export_dir: {JsonSerializer.Serialize(export)}
            """);
        var r = CliRunner.Run("export", exportConfig);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(File.ReadAllBytes(Path.Combine(glm.ModelDir, "config.json")), File.ReadAllBytes(Path.Combine(export, "config.json")));
        Assert.Equal(ChatGlmTinyFixture.RemoteCode, File.ReadAllText(Path.Combine(export, "modeling_chatglm.py")));
        foreach (string file in new[] { "tokenizer.model", "tokenizer_config.json" })
            Assert.Equal(File.ReadAllBytes(Path.Combine(glm.ModelDir, file)), File.ReadAllBytes(Path.Combine(export, file)));
        var baseTensors = TinyModelFixture.TensorBytes(glm.ModelDir);
        var exported = TinyModelFixture.TensorBytes(export);
        Assert.Equal(baseTensors.Keys.Order(StringComparer.Ordinal), exported.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(baseTensors["transformer.rotary_pos_emb.inv_freq"], exported["transformer.rotary_pos_emb.inv_freq"]);
        Assert.NotEqual(baseTensors["transformer.encoder.layers.0.self_attention.query_key_value.weight"], exported["transformer.encoder.layers.0.self_attention.query_key_value.weight"]);

        int[][] ids = [[5, 900, 31, 2047, 77, 1200], [64, 300, 12, 9, 0, 0]];
        int[][] mask = [[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]];
        using var unmerged = DecoderModel.LoadForGeneration(glm.ModelDir, adapterDirectories: [output]);
        using var merged = DecoderModel.LoadForGeneration(export);
        var (_, expected) = unmerged.Evaluate(ids, mask);
        var (_, actual) = merged.Evaluate(ids, mask);
        int vocab = merged.Config.VocabSize;
        for (int row = 0; row < 12; row++)
        {
            if (mask[row / 6][row % 6] == 0) continue;
            for (int v = 0; v < vocab; v++)
            {
                int i = row * vocab + v;
                Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-4, $"row {row}, logit {v}: {expected[i]} vs {actual[i]}");
            }
        }
    }

    [Fact]
    public void Qlora_trains_the_fused_projections_quantised()
    {
        string output = glm.PathFor("qlora");
        var r = TinyModelFixture.Train(Config("qlora", output, ("quantization_bit", 4)));

        var log = TinyModelFixture.TrainerLog(output);
        Assert.All(log[..^1], l => Assert.True(l.Loss is { } loss && double.IsFinite(loss) && loss > 0, $"{l}"));
        Assert.True(log[^2].Loss < log[0].Loss, $"the loss should fall over six steps at lr 1e-2: {string.Join(", ", log)}");
        using var adapter = SafetensorsFile.Open(Path.Combine(output, "adapter_model.safetensors"));
        Assert.Contains(adapter.ReadFloat32("base_model.model.transformer.encoder.layers.0.mlp.dense_h_to_4h.lora_B.weight"), v => v != 0);
    }

    /// <summary>chat's session and the API server (real HTTP on loopback) serve the folder with its tokenizer.model alike.</summary>
    [Fact]
    public async Task Chat_and_the_api_give_the_same_greedy_reply()
    {
        string expected;
        using (var session = ChatSession.Open(glm.ModelDir, "empty", null))
        {
            var (text, result) = session.Reply("hello world", session.DefaultOptions() with { DoSample = false, MaxNewTokens = 8 });
            Assert.NotEmpty(result.NewIds);
            expected = text;
        }
        using var served = ServedModel.Load("glm", glm.ModelDir, [], "empty", null, 1024);
        await using var server = await ApiServer.StartAsync(new ApiServerOptions { Port = 0 }, [served]);
        using var http = new HttpClient { BaseAddress = server.Address };
        var response = await http.PostAsJsonAsync("/v1/chat/completions",
            new { model = "glm", messages = new[] { new { role = "user", content = "hello world" } }, temperature = 0, max_tokens = 8 });
        string body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, body);
        using var json = JsonDocument.Parse(body);
        Assert.Equal(expected, json.RootElement.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
    }

    [Fact]
    public void Full_fine_tuning_saves_every_tensor_of_the_base_and_reloads()
    {
        string output = glm.PathFor("full");
        TinyModelFixture.Train(Config("full", output, ("finetuning_type", "full"), ("max_steps", 2), ("learning_rate", 1e-4)));

        var baseTensors = TinyModelFixture.TensorBytes(glm.ModelDir);
        var saved = TinyModelFixture.TensorBytes(output);
        Assert.Equal(baseTensors.Keys.Order(StringComparer.Ordinal), saved.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(baseTensors["transformer.rotary_pos_emb.inv_freq"], saved["transformer.rotary_pos_emb.inv_freq"]);
        Assert.NotEqual(baseTensors["transformer.encoder.layers.0.self_attention.query_key_value.bias"], saved["transformer.encoder.layers.0.self_attention.query_key_value.bias"]);
        using var reloaded = DecoderModel.LoadForGeneration(output);
        Assert.Equal(Architecture.ChatGlm, reloaded.Config.Architecture);
    }
}
