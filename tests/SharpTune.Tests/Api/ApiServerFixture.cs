using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.Api;
using SharpTune.Inference;
using SharpTune.IO.Safetensors;
using SharpTune.Model;
using SharpTune.Templates;
using SharpTune.Tokenization;
using SharpTune.Training.Model;

namespace SharpTune.Tests.Api;

/// <summary>The API tests share one server; they run one after another, as its single worker serves them anyway.</summary>
[CollectionDefinition(Name)]
public sealed class ApiCollection : ICollectionFixture<ApiServerFixture>
{
    public const string Name = "api";
}

/// <summary>
/// A live server on a free loopback port (Kestrel): the `init-model --preset tiny` model as id "tiny" and, with a
/// LoRA adapter written here, as id "lora-a". Reference copies of both models, loaded apart from the server, give
/// the expected texts straight from <see cref="Generator"/>.
/// </summary>
public sealed class ApiServerFixture : IAsyncLifetime
{
    public const int ContextLength = 8192;
    public const long BodyLimit = 64 * 1024;

    public string Root { get; } = Directory.CreateTempSubdirectory("sharptune-api-").FullName;
    public string ModelDir => Path.Combine(Root, "tiny");
    public string AdapterDir => Path.Combine(Root, "lora-a");
    public ServedModel Base { get; private set; } = null!;
    public ServedModel Adapter { get; private set; } = null!;
    public ApiServer Server { get; private set; } = null!;
    public HttpClient Http { get; private set; } = null!;
    public DecoderModel ReferenceBase { get; private set; } = null!;
    public DecoderModel ReferenceAdapter { get; private set; } = null!;
    public Tokenizer Tokenizer { get; private set; } = null!;
    public ChatTemplate Template { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        ModelInitializer.Create(ModelPreset.Get("tiny"), TestPaths.Fixtures("tokenizers", "qwen2.5-instruct"), ModelDir, seed: 1);
        WriteAdapter(AdapterDir);
        Base = ServedModel.Load("tiny", ModelDir, [], "auto", null, ContextLength);
        Adapter = ServedModel.Load("lora-a", ModelDir, [AdapterDir], "auto", null, ContextLength);
        ReferenceBase = DecoderModel.LoadForGeneration(ModelDir);
        ReferenceAdapter = DecoderModel.LoadForGeneration(ModelDir, adapterDirectories: [AdapterDir]);
        Tokenizer = Tokenizer.FromDirectory(ModelDir);
        Template = ChatTemplates.ForModel("auto", ModelDir);
        Server = await ApiServer.StartAsync(new ApiServerOptions { Port = 0, MaxRequestBodyBytes = BodyLimit }, [Base, Adapter]);
        Http = new HttpClient { BaseAddress = Server.Address };
    }

    public async Task DisposeAsync()
    {
        Http.Dispose();
        await Server.DisposeAsync();
        Base.Dispose();
        Adapter.Dispose();
        ReferenceBase.Dispose();
        ReferenceAdapter.Dispose();
        Directory.Delete(Root, recursive: true);
    }

    /// <summary>
    /// A rank-2 LoRA for the tiny preset on every q_proj and v_proj with large seeded weights, so it visibly changes
    /// the output (the comparison tests use it too).
    /// </summary>
    public static void WriteAdapter(string dir)
    {
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "adapter_config.json"),
            """{"peft_type": "LORA", "r": 2, "lora_alpha": 16, "lora_dropout": 0.0, "target_modules": ["q_proj", "v_proj"], "base_model_name_or_path": "tiny"}""");
        var random = new Random(3);
        float[] Values(int n) => Enumerable.Range(0, n).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray();
        var tensors = new List<(string, long[], float[])>();
        for (int layer = 0; layer < 2; layer++)
            foreach (var (module, outFeatures) in new[] { ("q_proj", 64), ("v_proj", 32) })
            {
                string path = $"base_model.model.model.layers.{layer}.self_attn.{module}";
                tensors.Add(($"{path}.lora_A.weight", [2, 64], Values(2 * 64)));
                tensors.Add(($"{path}.lora_B.weight", [outFeatures, 2], Values(outFeatures * 2)));
            }
        SafetensorsWriter.Write(Path.Combine(dir, "adapter_model.safetensors"), tensors);
    }

    /// <summary>What the chat template makes of a conversation, tokenized: the prompt a chat request must produce.</summary>
    public int[] ChatPrompt(IReadOnlyList<ChatMessage> messages, string? toolsJson = null) =>
        Tokenizer.Encode(Template.Render(messages, addGenerationPrompt: true, toolsJson));

    /// <summary>The reply <see cref="Generator"/> gives for a prompt, with the served stop tokens.</summary>
    public (string Text, GenerationResult Result) Generate(DecoderModel model, int[] prompt, GenerationOptions options)
    {
        var result = new Generator(model).Generate(prompt, options with { StopTokenIds = Base.Defaults.StopTokenIds });
        return (Tokenizer.Decode(result.NewIds, skipSpecialTokens: true), result);
    }

    public (string Text, GenerationResult Result) Greedy(DecoderModel model, int[] prompt, int maxTokens) =>
        Generate(model, prompt, new GenerationOptions { MaxNewTokens = maxTokens });

    public static StringContent Json(object body) => new(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json");

    public async Task<(int Status, JsonNode Body)> PostAsync(string path, object body, HttpClient? client = null)
    {
        using var response = await (client ?? Http).PostAsync(path, Json(body));
        return ((int)response.StatusCode, JsonNode.Parse(await response.Content.ReadAsStringAsync())!);
    }

    /// <summary>A streamed response's events: every "data: " payload in order ([DONE] included as text).</summary>
    public async Task<(int Status, string ContentType, List<string> Events)> PostStreamAsync(string path, object body)
    {
        using var response = await Http.PostAsync(path, Json(body));
        string text = await response.Content.ReadAsStringAsync();
        var events = text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries)
            .Select(e => e.StartsWith("data: ", StringComparison.Ordinal) ? e["data: ".Length..] : throw new InvalidDataException($"not an SSE data line: {e}"))
            .ToList();
        return ((int)response.StatusCode, response.Content.Headers.ContentType?.MediaType ?? "", events);
    }

    public async Task<JsonNode> HealthAsync() => JsonNode.Parse(await Http.GetStringAsync("/health"))!;
}
