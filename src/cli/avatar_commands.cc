// `lipsync avatar import` and `lipsync avatar demo`: building avatar folders.
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "avatar/avatar_import.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/json_text.h"

namespace lipsync::cli {
namespace {

struct ImportArgs {
  std::string synctalk;
  std::string frames;
  std::string crop_rects;
  std::string output;
  std::string name;
};

void print(const avatar::ImportSummary& s, const std::string& output) {
  std::cout << core::json_text({{"frames", s.frames},
                                {"width", s.width},
                                {"height", s.height},
                                {"output", output}})
            << "\n";
}

void run_import(const ImportArgs& a) {
  const std::string name =
      a.name.empty() ? std::filesystem::path(a.output).filename().string() : a.name;
  if (!a.synctalk.empty() && (!a.frames.empty() || !a.crop_rects.empty())) {
    throw Error::invalid_input(
        "avatar import: give either --synctalk DIR or --frames and "
        "--crop-rects, not both");
  }
  if (!a.synctalk.empty()) {
    print(avatar::import_synctalk(a.synctalk, a.output, name), a.output);
    return;
  }
  if (a.frames.empty() || a.crop_rects.empty()) {
    throw Error::invalid_input(
        "avatar import: needs --synctalk DIR, or --frames DIR_OR_VIDEO "
        "with --crop-rects FILE");
  }
  print(avatar::import_frames(a.frames, a.crop_rects, a.output, name), a.output);
}

}  // namespace

void add_avatar_commands(CLI::App& app) {
  CLI::App* group = app.add_subcommand("avatar", "Build avatar folders");
  group->require_subcommand(1);
  {
    auto args = std::make_shared<ImportArgs>();
    CLI::App* cmd = group->add_subcommand(
        "import",
        "From a SyncTalk_2D data folder, or from frames (a folder or a video) + crop rects");
    cmd->add_option("--synctalk", args->synctalk,
                    "SyncTalk_2D folder with full_body_img/<i>.jpg and landmarks/<i>.lms");
    cmd->add_option("--frames", args->frames,
                    "Folder of images (ordered by the number in each name) or a video file");
    cmd->add_option("--crop-rects", args->crop_rects,
                    "crop_rects.json: [[x1, y1, x2, y2], ...], one square per frame");
    cmd->add_option("-o,--output", args->output, "New avatar folder")->required();
    cmd->add_option("--name", args->name, "Avatar name (default: the folder name)");
    cmd->callback([args] { run_import(*args); });
  }
  {
    struct DemoArgs {
      std::string output;
      int frames = 50;
      int width = 1280;
      int height = 720;
    };
    auto args = std::make_shared<DemoArgs>();
    CLI::App* cmd = group->add_subcommand(
        "demo",
        "Draw the demo avatar: a cartoon face whose mouth sits where the demo model paints");
    cmd->add_option("-o,--output", args->output, "New avatar folder")->required();
    cmd->add_option("--frames", args->frames, "Template frames")->capture_default_str();
    cmd->add_option("--width", args->width, "Frame width")->capture_default_str();
    cmd->add_option("--height", args->height, "Frame height")->capture_default_str();
    cmd->callback([args] {
      print(avatar::write_demo_avatar(args->output, args->frames, args->width, args->height),
            args->output);
    });
  }
}

}  // namespace lipsync::cli
