// Building avatar folders: from a SyncTalk_2D data folder, from a folder of images or a video
// plus crop_rects.json, and the procedural demo avatar. Every importer checks everything first
// (frame count = rect count, every rect square, non-empty and inside its frame, every frame
// readable and of one size; errors name the frame) and writes the folder through a staging
// folder and a rename, so a failed import leaves nothing behind.
// Thread contract: stateless functions; concurrent imports must use different outputs.
#pragma once

#include <filesystem>
#include <string>

namespace lipsync::avatar {

struct ImportSummary {
  int frames = 0;
  int width = 0;
  int height = 0;
};

// SyncTalk_2D layout: DIR/full_body_img/<i>.jpg and DIR/landmarks/<i>.lms for i = 0..n-1; the
// crop of each frame follows the landmark rule (REFERENCE.md §5). Frame files are copied as they
// are (no re-encoding).
ImportSummary import_synctalk(const std::filesystem::path& synctalk_dir,
                              const std::filesystem::path& out, const std::string& name);

// Frames from a folder of images (ordered by the number in each file name; copied as they are)
// or from a video file (decoded, written as PNG), with crop rects from a crop_rects.json.
ImportSummary import_frames(const std::filesystem::path& frames, const std::filesystem::path& rects,
                            const std::filesystem::path& out, const std::string& name);

// The demo avatar: a procedurally drawn cartoon face (our own drawing: head, hair, blinking eyes,
// small head motion, a closed mouth) whose crop rects put the mouth where the demo generator
// paints it (contract::kDemoMouth). Requires frames >= 1 and a size of at least 320 x 240.
ImportSummary write_demo_avatar(const std::filesystem::path& out, int frames, int width,
                                int height);

}  // namespace lipsync::avatar
