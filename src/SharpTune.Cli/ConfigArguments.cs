using SharpTune.Hparams;

namespace SharpTune.Cli;

/// <summary>
/// LLaMA-Factory's shell examples pass config keys as <c>--key value</c> or <c>--key=value</c>
/// (<c>llamafactory-cli train cfg.yaml --learning_rate 1e-4</c>). After a config file, such an argument naming a
/// config key becomes the <c>key=value</c> override the config commands take; a key with no value (<c>--do_train</c>)
/// is true, as transformers' argument parser reads it. Other options (<c>--lenient</c>, <c>--port</c>) are left alone.
/// </summary>
public static class ConfigArguments
{
    /// <summary>The commands whose first argument may be a config file.</summary>
    private static readonly string[] ConfigCommands = ["train", "estimate", "export", "api", "chat", "eval"];

    public static string[] Normalize(string[] args)
    {
        if (args.Length < 2 || !ConfigCommands.Contains(args[0]) || args[1].StartsWith('-')) return args;
        var result = new List<string> { args[0], args[1] };
        for (int i = 2; i < args.Length; i++)
        {
            string arg = args[i];
            int equals = arg.IndexOf('=');
            string key = arg.StartsWith("--", StringComparison.Ordinal) ? arg[2..(equals > 0 ? equals : arg.Length)] : "";
            if (!SftConfig.IsKey(key))
                result.Add(arg);
            else if (equals > 0)
                result.Add($"{key}={arg[(equals + 1)..]}");
            else if (i + 1 < args.Length && !args[i + 1].StartsWith("--", StringComparison.Ordinal))
                result.Add($"{key}={args[++i]}");
            else
                result.Add($"{key}=true");
        }
        return result.ToArray();
    }
}
