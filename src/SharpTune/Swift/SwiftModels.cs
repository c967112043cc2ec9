namespace SharpTune.Swift;

/// <summary>One ms-swift 2.x <c>--model_type</c> name: the ModelScope id it downloads and the template it trains with.</summary>
public sealed record SwiftModel(string ModelType, string ModelId, string Template);

/// <summary>
/// The ms-swift 2.x <c>--model_type</c> names SharpTune knows (docs/swift.md's table): each gives the model (a
/// ModelScope id, as ms-swift downloads from ModelScope; resolved like any <c>model_name_or_path</c>, so a local
/// folder given with <c>--model</c> is used instead) and the template. In ms-swift 3.x <c>--model_type</c> names an
/// architecture and <c>--model</c> the model; SharpTune takes either.
/// </summary>
public static class SwiftModels
{
    public static IReadOnlyList<SwiftModel> Table { get; } =
    [
        new("chatglm3-6b", "ZhipuAI/chatglm3-6b", "chatglm3"),
        new("glm4-9b-chat", "ZhipuAI/glm-4-9b-chat", "glm4"),
        new("qwen1half-7b-chat", "qwen/Qwen1.5-7B-Chat", "qwen1.5"),
        new("qwen2-7b-instruct", "qwen/Qwen2-7B-Instruct", "qwen2"),
        new("qwen2_5-0_5b-instruct", "Qwen/Qwen2.5-0.5B-Instruct", "qwen"),
        new("qwen2_5-1_5b-instruct", "Qwen/Qwen2.5-1.5B-Instruct", "qwen"),
        new("qwen2_5-7b-instruct", "Qwen/Qwen2.5-7B-Instruct", "qwen"),
        new("qwen3-8b", "Qwen/Qwen3-8B", "qwen3"),
    ];

    /// <summary>ms-swift's template names (3.x <c>--template</c>, 2.x <c>--template_type</c>) → SharpTune's.</summary>
    public static IReadOnlyDictionary<string, string> Templates { get; } = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["chatglm3"] = "chatglm3",
        ["glm4"] = "glm4",
        ["qwen"] = "qwen2",
        ["qwen2_5"] = "qwen",
        ["qwen3"] = "qwen3",
        ["chatml"] = "chatml",
        ["llama3"] = "llama3",
    };

    /// <exception cref="ArgumentException">A name not in the table; the message lists the known ones.</exception>
    public static SwiftModel Get(string modelType) =>
        Table.FirstOrDefault(m => m.ModelType == modelType)
        ?? throw new ArgumentException($"--model_type {modelType} is not one SharpTune knows ({string.Join(", ", Table.Select(m => m.ModelType))}); give the model with --model and the template with --template");

    /// <exception cref="ArgumentException">A template name without a SharpTune template; the message lists the known ones.</exception>
    public static string Template(string swiftName) =>
        Templates.TryGetValue(swiftName, out var name)
            ? name
            : throw new ArgumentException($"--template {swiftName} is not one SharpTune has ({string.Join(", ", Templates.Keys)})");
}
