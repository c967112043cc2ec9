using System.Reflection;

namespace SharpTune.Board;

/// <summary>
/// The page's files, embedded in this assembly under <c>wwwroot/</c> (no CDN, nothing on disk to go missing):
/// HTML, CSS, JavaScript, the tab fragments and the i18n dictionaries.
/// </summary>
public sealed class StaticAssets
{
    private const string Prefix = "wwwroot/";
    private readonly Dictionary<string, byte[]> _files = new(StringComparer.Ordinal);

    public StaticAssets()
    {
        var assembly = typeof(StaticAssets).Assembly;
        foreach (string name in assembly.GetManifestResourceNames().Where(n => n.StartsWith(Prefix, StringComparison.Ordinal)))
        {
            using var stream = assembly.GetManifestResourceStream(name)!;
            using var copy = new MemoryStream();
            stream.CopyTo(copy);
            _files[name[Prefix.Length..].Replace('\\', '/')] = copy.ToArray();
        }
    }

    /// <summary>Every file's path (as <c>tabs/train.js</c>).</summary>
    public IEnumerable<string> Paths => _files.Keys;

    public bool TryGet(string path, out byte[] content) => _files.TryGetValue(path, out content!);

    public static string ContentType(string path) => Path.GetExtension(path) switch
    {
        ".html" => "text/html; charset=utf-8",
        ".css" => "text/css; charset=utf-8",
        ".js" => "text/javascript; charset=utf-8",
        ".json" => "application/json; charset=utf-8",
        ".svg" => "image/svg+xml",
        ".png" => "image/png",
        _ => "application/octet-stream",
    };
}
