"""What the pipeline and training know about a face: face-mesh indices, landmarks on crops
and their optical flow, and the alignment to the canonical crop and back.

    from realtime.face.align import estimate_alignment, reference_points, warp_to_crop
    from realtime.face.landmarks import CropLandmarker

A leaf: it imports nothing from the rest of ``realtime`` but ``realtime.types``, so training
aligns its faces with this code without pulling in the pipeline.
"""
