using System.Diagnostics;
using System.Text.Json.Nodes;
using SharpTune.Templates;

namespace SharpTune.Tests.Api;

/// <summary>A test that needs node on PATH and the openai npm package installed in tests/clients/openai-node; skipped with the reason otherwise.</summary>
public sealed class OpenAiNodeFactAttribute : FactAttribute
{
    public static readonly string ClientDir = Path.Combine(TestPaths.RepoRoot, "tests", "clients", "openai-node");

    public static string? Node => (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
        .Select(dir => Path.Combine(dir, "node"))
        .FirstOrDefault(File.Exists);

    public OpenAiNodeFactAttribute()
    {
        if (Node is null) Skip = "the openai npm client check needs node on PATH";
        else if (!Directory.Exists(Path.Combine(ClientDir, "node_modules", "openai"))) Skip = $"the openai npm client check needs 'npm ci' run in {ClientDir}";
    }
}

/// <summary>
/// The official <c>openai</c> npm client against the live server (tests/clients/openai-node). It runs when node is on
/// PATH and the package is installed there (<c>npm ci</c> in that folder; .ci/run does it); otherwise it is skipped
/// with the reason.
/// </summary>
[Collection(ApiCollection.Name)]
public sealed class OpenAiNodeClientTests(ApiServerFixture fx)
{
    [OpenAiNodeFact]
    public async Task TheOfficialOpenAiClientChatsStreamsListsModelsAndSeesErrors()
    {
        string node = OpenAiNodeFactAttribute.Node!;
        var (expected, _) = fx.Greedy(fx.ReferenceBase, fx.ChatPrompt([new(ChatRole.User, "Hello from the openai client")]), 8);

        var start = new ProcessStartInfo(node) { WorkingDirectory = OpenAiNodeFactAttribute.ClientDir, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string arg in new[] { "check.mjs", new Uri(fx.Server.Address, "v1").ToString(), "tiny", "no-key-needed" }) start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.True(process.ExitCode == 0, $"node check.mjs exited with {process.ExitCode}:\n{await stderr}");

        var result = JsonNode.Parse(await stdout)!;
        Assert.Equal(expected, (string)result["content"]!);
        Assert.Equal("length", (string)result["finish_reason"]!);
        Assert.Equal(8, (int)result["usage"]!["completion_tokens"]!);
        Assert.Equal(expected, (string)result["streamed"]!);
        Assert.Equal("length", (string)result["stream_finish_reason"]!);
        Assert.Equal(8, (int)result["stream_usage"]!["completion_tokens"]!);
        Assert.Equal(404, (int)result["unknown_model_status"]!);
        Assert.Equal(["tiny", "lora-a"], result["models"]!.AsArray().Select(m => (string)m!));
    }
}
