using System.Text.RegularExpressions;

namespace Lepton.Shared.Validation;

/// <summary>Turns ONNX Runtime's error messages into sentences fit for a rejection reason.</summary>
public static partial class OrtMessages
{
    [GeneratedRegex(@"^\[ErrorCode:\w+\]\s*", RegexOptions.CultureInvariant)]
    private static partial Regex ErrorCode();

    // "/onnxruntime_src/…/model_load_utils.h:46 void onnxruntime::…(const …&, int) " before the message.
    [GeneratedRegex(@"^\S+\.(?:h|hpp|cc|cpp|c):\d+\s+[^(]*\([^)]*\)\s*", RegexOptions.CultureInvariant)]
    private static partial Regex SourceLocation();

    [GeneratedRegex(@"(?<![\w.])(?:[A-Za-z]:)?[/\\][\w.\-/\\]+", RegexOptions.CultureInvariant)]
    private static partial Regex PathLike();

    public static string Clean(string message)
    {
        var line = message.Split('\n')[0].Trim();
        line = ErrorCode().Replace(line, "");
        line = SourceLocation().Replace(line, "");
        line = PathLike().Replace(line, "<path>");
        return line.Length > 400 ? line[..400] + "…" : line;
    }
}
