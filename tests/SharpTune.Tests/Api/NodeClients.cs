using System.Diagnostics;
using System.Text.Json.Nodes;

namespace SharpTune.Tests.Api;

/// <summary>
/// A test that runs a real JavaScript client from tests/clients/FOLDER: it needs node on PATH and the client's npm
/// package installed there (<c>npm ci</c> in that folder; .ci/run does it), and is skipped with the reason otherwise.
/// </summary>
public sealed class NodeClientFactAttribute : FactAttribute
{
    public NodeClientFactAttribute(string folder, string package)
    {
        if (NodeClients.Node is null) Skip = $"the {package} npm client check needs node on PATH";
        else if (!Directory.Exists(Path.Combine(NodeClients.Folder(folder), "node_modules", package)))
            Skip = $"the {package} npm client check needs 'npm ci' run in {NodeClients.Folder(folder)}";
    }
}

public static class NodeClients
{
    public static string? Node => (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
        .Select(dir => Path.Combine(dir, "node"))
        .FirstOrDefault(File.Exists);

    public static string Folder(string name) => Path.Combine(TestPaths.RepoRoot, "tests", "clients", name);

    /// <summary>Runs <c>node check.mjs ARGS</c> in the client's folder; its one line of JSON output, or a failure with its stderr.</summary>
    public static async Task<JsonNode> RunCheckAsync(string folder, params string[] args)
    {
        var start = new ProcessStartInfo(Node!) { WorkingDirectory = Folder(folder), RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add("check.mjs");
        foreach (string arg in args) start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.True(process.ExitCode == 0, $"node check.mjs in {folder} exited with {process.ExitCode}:\n{await stderr}");
        return JsonNode.Parse(await stdout)!;
    }
}
