using System.CommandLine;
using SharpTune.Board;

namespace SharpTune.Cli.Commands;

/// <summary>
/// `sharptune webui`: SharpTune Board, the web page that trains, evaluates, chats with, compares and exports models
/// (LLaMA-Factory's `llamafactory-cli webui`), on loopback unless a token guards it. Runs are `sharptune train`
/// children of this same executable.
/// </summary>
public static class WebuiCommand
{
    public static Command Create()
    {
        var host = new Option<string>("--host") { Description = "IP address to listen on, or a name whose every address is bound; anything but loopback needs --token", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "Port to listen on (0: a free one)", DefaultValueFactory = _ => 7860 };
        var root = new Option<string?>("--root") { Description = "The board's folder: it reads models/ and data/ and writes saves/ below it, and nothing else (default: the current folder)" };
        var token = new Option<string?>("--token") { Description = "Ask for this token (at least 8 characters) once per browser before the page opens (default: $SHARPTUNE_BOARD_TOKEN, else none)" };
        var command = new Command("webui", "Open SharpTune Board, the web UI for training and trying models, until Ctrl+C") { host, port, root, token };
        command.SetAction(r => CliAction.Run(() =>
        {
            var options = new BoardOptions
            {
                Host = r.GetValue(host)!,
                Port = r.GetValue(port),
                Root = Path.GetFullPath(r.GetValue(root) ?? Directory.GetCurrentDirectory()),
                Token = r.GetValue(token) ?? Environment.GetEnvironmentVariable("SHARPTUNE_BOARD_TOKEN"),
            };
            var board = BoardServer.StartAsync(options).GetAwaiter().GetResult();
            try
            {
                Console.Error.WriteLine($"[sharptune] SharpTune Board at {board.Address} (root {board.Roots.Root}{(board.Auth.TokenRequired ? ", token required" : "")}); Ctrl+C stops");
                if (!board.IsLoopbackOnly)
                    Console.Error.WriteLine("[sharptune] note: not on loopback: plain HTTP carries the token and the pages unencrypted (put a TLS proxy in front across networks)");
                board.WaitForShutdownAsync().GetAwaiter().GetResult();
                Console.Error.WriteLine("[sharptune] stopped");
            }
            finally
            {
                board.DisposeAsync().AsTask().GetAwaiter().GetResult();
            }
            return 0;
        }));
        return command;
    }
}
