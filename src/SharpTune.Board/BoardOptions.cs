namespace SharpTune.Board;

/// <summary>How `sharptune webui` runs: where it listens, the folder its files are confined to, the token.</summary>
public sealed record BoardOptions
{
    /// <summary>An IP address, or a name whose every address is bound; anything but loopback needs <see cref="Token"/>.</summary>
    public string Host { get; init; } = "127.0.0.1";
    /// <summary>0 picks a free port.</summary>
    public int Port { get; init; } = 7860;
    /// <summary>The board's folder: models/, data/ and saves/ below it are the only places it reads or writes (<see cref="BoardRoots"/>).</summary>
    public string Root { get; init; } = Directory.GetCurrentDirectory();
    /// <summary>When set, the page asks for it once (login) and every request then carries the session cookie.</summary>
    public string? Token { get; init; }
    /// <summary>The largest request body (saved YAML, chat messages): 1 MiB.</summary>
    public long MaxRequestBodyBytes { get; init; } = 1024 * 1024;
    /// <summary>
    /// How to start `sharptune` for a run (the program and the arguments before `train`); null: this process's own
    /// executable (<see cref="SharpTuneCommand.Current"/>).
    /// </summary>
    public SharpTuneCommand? Command { get; init; }
    /// <summary>The hub cache whose model snapshots the model list also offers (read only); null: the default cache.</summary>
    public string? HubCache { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first option out of range.</summary>
    public void Validate()
    {
        if (Port is < 0 or > 65535) throw new ArgumentException($"--port must be between 0 and 65535, got {Port}");
        if (Token is { } token && token.Length < 8) throw new ArgumentException("--token must be at least 8 characters long");
        if (!Directory.Exists(Root)) throw new ArgumentException($"--root '{Root}' is not a folder");
    }
}
