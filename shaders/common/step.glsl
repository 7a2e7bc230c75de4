// step.glsl: the first position of the batch an op runs on. A decode step
// recorded once and replayed (vulkan/replay.c) cannot bake its position into
// push constants, so it reads it from the step buffer: pos_slot > 0 names the
// word, 0 means the push-constant value. Include after declaring
//   layout(binding = N) readonly buffer StepBuf { uint step[]; };
// Unreplayed ops bind a dummy buffer there, which must never be read: hence a
// branch, not a select.
uint batch_pos0(uint pos0, uint pos_slot)
{
    if (pos_slot != 0u)
        return step[pos_slot - 1u];
    return pos0;
}
