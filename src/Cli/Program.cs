using System.CommandLine;
using Lepton.Cli.Commands;

var root = new RootCommand("lepton: run many versions of an ONNX model side by side, and move each new one through validate → evaluate → canary → promote.");
root.Subcommands.Add(DevCommand.Create());
return await root.Parse(args).InvokeAsync();
