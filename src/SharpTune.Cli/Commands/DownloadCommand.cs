using System.CommandLine;
using SharpTune.Hub;
using SharpTune.IO;

namespace SharpTune.Cli.Commands;

/// <summary>
/// `sharptune download`: fetches a Hub repository into the Hugging Face cache as huggingface-cli download does
/// (HF_ENDPOINT, HF_TOKEN, HF_HUB_CACHE/HF_HOME, HF_HUB_OFFLINE) and prints the snapshot folder; with --local-dir,
/// the files are then copied into that folder. With --hub modelscope (or USE_MODELSCOPE_HUB=1) a ModelScope model
/// goes into modelscope's cache instead (MODELSCOPE_DOMAIN, MODELSCOPE_API_TOKEN, MODELSCOPE_CACHE).
/// </summary>
public static class DownloadCommand
{
    public static Command Create()
    {
        var repoId = new Argument<string>("REPO_ID") { Description = "Hub repository id, e.g. Qwen/Qwen2.5-0.5B-Instruct" };
        var revision = new Option<string>("--revision") { Description = "Branch, tag or commit (main is master on ModelScope)", DefaultValueFactory = _ => "main" };
        var include = new Option<string[]>("--include") { Description = "Only files matching this glob (fnmatch, as huggingface_hub); repeat for more", AllowMultipleArgumentsPerToken = true };
        var exclude = new Option<string[]>("--exclude") { Description = "Skip files matching this glob; repeat for more", AllowMultipleArgumentsPerToken = true };
        var repoType = new Option<string>("--repo-type") { Description = "model or dataset", DefaultValueFactory = _ => "model" };
        repoType.AcceptOnlyFromAmong("model", "dataset");
        var localDir = new Option<string?>("--local-dir") { Description = "Also copy the files into this folder" };
        var hub = new Option<string?>("--hub") { Description = "hf or modelscope (default: modelscope when USE_MODELSCOPE_HUB=1, else hf)" };
        hub.AcceptOnlyFromAmong("hf", "modelscope");
        var command = new Command("download", "Download a Hugging Face Hub repository (or a ModelScope model, --hub modelscope) into that hub's cache (shared with Python tools) and print its folder.")
        {
            repoId, revision, include, exclude, repoType, localDir, hub,
        };
        command.SetAction(r => CliAction.Run(() =>
        {
            string[] included = r.GetValue(include) ?? [], excluded = r.GetValue(exclude) ?? [];
            var settings = r.GetValue(hub) switch
            {
                "hf" => HubSettings.For(HubKind.HuggingFace),
                "modelscope" => HubSettings.For(HubKind.ModelScope),
                _ => HubSettings.FromEnvironment(),
            };
            string snapshot = HubDownload.Snapshot(settings, r.GetValue(repoType)!, r.GetValue(repoId)!, r.GetValue(revision)!,
                included, excluded, Console.Error);
            string folder = snapshot;
            if (r.GetValue(localDir) is { } target)
            {
                folder = Path.GetFullPath(target);
                // The snapshot may also hold files an earlier download fetched: only those asked for now are copied.
                var files = Directory.EnumerateFiles(snapshot, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(snapshot, f).Replace('\\', '/'));
                foreach (string file in HubGlob.Filter(files, included, excluded))
                {
                    string destination = Path.Combine(folder, file);
                    Directory.CreateDirectory(Path.GetDirectoryName(destination)!);
                    AtomicFile.Copy(Path.Combine(snapshot, file), destination);
                }
            }
            Console.WriteLine(folder);
            return 0;
        }));
        return command;
    }
}
