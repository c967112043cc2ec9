using System.Text;
using SharpTune.Templates;

namespace SharpTune.Chat;

/// <summary>
/// A generated reply's text as it streams, shown as <see cref="ChatTemplate.ReplyContent"/> gives it whole: for a
/// template whose model writes a metadata line (GLM), the text is held back until that line ends; an empty one is
/// dropped with the white space that opens the content, and white space is held back until more text follows it, so
/// the shown pieces add up to the stripped content. A non-empty metadata line (a tool call) is shown as generated.
/// Without a template (a plain completion) the text is shown as generated.
/// </summary>
public sealed class ReplyStream(ChatTemplate? template)
{
    private readonly StringBuilder generated = new();
    private bool lineEnded;
    private bool plain;
    private bool shownContent;
    private string heldSpace = "";

    /// <summary>The reply as a person reads it: <see cref="ChatTemplate.ReplyContent"/> of all the text pushed.</summary>
    public string Reply => template?.ReplyContent(generated.ToString()) ?? generated.ToString();

    /// <summary>Takes the next decoded piece; returns the text to show now (maybe empty).</summary>
    public string Push(string piece)
    {
        generated.Append(piece);
        if (template is not { ReplyMetadataLine: true }) return piece;
        if (lineEnded) return plain ? Content(piece) : piece;

        string text = generated.ToString();
        int newline = text.IndexOf('\n');
        if (newline < 0) return "";
        lineEnded = true;
        plain = PythonText.Strip(text[..newline]).Length == 0;
        return plain ? Content(text[(newline + 1)..]) : text;
    }

    /// <summary>The text still to show once generation ends: a reply without any newline, shown stripped.</summary>
    public string Finish() => template is { ReplyMetadataLine: true } && !lineEnded ? Reply : "";

    private string Content(string piece)
    {
        string text = heldSpace + (shownContent ? piece : PythonText.LStrip(piece));
        string shown = PythonText.RStrip(text);
        heldSpace = text[shown.Length..];
        if (shown.Length > 0) shownContent = true;
        return shown;
    }
}
